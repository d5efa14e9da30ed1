// The one place Redis connections are made.
import type { Writable } from 'node:stream';
import keySlot from 'cluster-key-slot';
import { type ChainableCommander, Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { JobbersError } from './errors.js';
import type { Logger } from './logger.js';

export interface RedisConnectionOptions {
  /** Blocking users (BullMQ workers, the exporter) must wait for Redis instead of failing commands. */
  blocking?: boolean;
  connectionName?: string;
  /**
   * A command without a reply for this long fails (so a hung Redis answers callers with an error
   * instead of holding them). Blocking connections never time out: their BZPOPMIN and XREAD BLOCK
   * wait on purpose, and their job moves must reach Redis once it answers again.
   * @default 1500 (JOBBERS_REDIS_COMMAND_TIMEOUT_MS)
   */
  commandTimeoutMs?: number;
}

export const defaultRedisCommandTimeoutMs = 1500;

const clusterScheme = 'redis+cluster://';

/** REDIS_URL `redis+cluster://host1:port1,host2:port2` names seed nodes of a Redis Cluster. */
export function isClusterUrl(url: string): boolean {
  return url.startsWith(clusterScheme);
}

export function clusterSeedNodes(url: string): { host: string; port: number }[] {
  return url
    .slice(clusterScheme.length)
    .split(',')
    .map((node) => node.trim())
    .filter(Boolean)
    .map((node) => {
      const parsed = new URL(`redis://${node}`);
      return { host: parsed.hostname, port: Number(parsed.port || 6379) };
    });
}

/**
 * A connection to REDIS_URL. For a Redis Cluster it is an ioredis Cluster, which has the same
 * command interface; BullMQ and Jobbers then need a hash-tagged prefix so a queue's keys share a slot.
 */
export function createRedisConnection(url: string, options: RedisConnectionOptions = {}): Redis {
  const base: RedisOptions = {
    connectionName: options.connectionName,
    lazyConnect: false,
    retryStrategy: (times) => Math.min(100 * times, 2000),
  };
  const tuned: RedisOptions = options.blocking
    ? { ...base, maxRetriesPerRequest: null, enableReadyCheck: true }
    : {
        ...base,
        maxRetriesPerRequest: 1,
        enableOfflineQueue: false,
        connectTimeout: 2000,
        commandTimeout: options.commandTimeoutMs ?? defaultRedisCommandTimeoutMs,
      };
  if (isClusterUrl(url)) {
    const { connectionName, ...redisOptions } = tuned;
    const cluster = new Cluster(clusterSeedNodes(url), {
      ...clusterFailoverOptions(options.blocking === true),
      redisOptions: { ...redisOptions, connectionName },
      enableOfflineQueue: tuned.enableOfflineQueue ?? true,
    });
    return cluster as unknown as Redis;
  }
  const connection = new Redis(url, tuned);
  if (!options.blocking) coalesceWrites(connection);
  return connection;
}

/**
 * Sends the commands written to the connection within one turn of the event loop in one socket
 * write: the socket is corked at the turn's first command and uncorked once the turn's I/O
 * callbacks have run (setImmediate). Under load, the commands of many requests then leave in one
 * syscall instead of one each (a loopback write costs about as much as a submission's own work).
 */
function coalesceWrites(connection: Redis): void {
  connection.on('connect', () => {
    const socket = (connection as unknown as { stream?: Writable }).stream;
    if (!socket || (socket as { jobbersCoalesced?: boolean }).jobbersCoalesced) return;
    (socket as { jobbersCoalesced?: boolean }).jobbersCoalesced = true;
    const write = socket.write;
    let corked = false;
    const uncork = () => {
      corked = false;
      socket.uncork();
    };
    socket.write = function coalescedWrite(this: Writable, ...args: Parameters<Writable['write']>) {
      if (!corked) {
        corked = true;
        socket.cork();
        setImmediate(uncork);
      }
      return write.apply(this, args);
    } as Writable['write'];
  });
}

/**
 * How a Redis Cluster connection rides through resharding and failover. MOVED and ASK are followed
 * at once; TRYAGAIN (a multi-key command during a slot migration), CLUSTERDOWN and a lost master are
 * retried after a pause, and every redirection or retry of one command counts against
 * maxRedirections, so a command gives up within a bound instead of waiting forever: about 1.5 s for
 * the manager's connection (its API answers 503 meanwhile), about 30 s for blocking users (workers,
 * the exporter), which covers a replica's promotion (cluster-node-timeout plus an election).
 * The slot map is refreshed on every MOVED and every 5 s, so a promoted replica is found.
 */
export function clusterFailoverOptions(blocking: boolean): ClusterOptions {
  const pauseMs = 250;
  return {
    enableReadyCheck: true,
    clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
    retryDelayOnMoved: 0,
    retryDelayOnFailover: pauseMs,
    retryDelayOnTryAgain: pauseMs,
    retryDelayOnClusterDown: pauseMs,
    maxRedirections: blocking ? 120 : 6,
    slotsRefreshTimeout: 1000,
    slotsRefreshInterval: 5000,
  };
}

/** A new connection to the same Redis (or Cluster) for blocking reads: commands wait while Redis is away. */
export function duplicateBlockingConnection(connection: Redis): Redis {
  if (connection instanceof Cluster) {
    const cluster = connection as Cluster;
    return cluster.duplicate([], {
      ...clusterFailoverOptions(true),
      redisOptions: {
        ...cluster.options.redisOptions,
        maxRetriesPerRequest: null,
        commandTimeout: undefined,
      },
      enableOfflineQueue: true,
    }) as unknown as Redis;
  }
  return connection.duplicate({
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    commandTimeout: undefined,
  });
}

/** One command of a batch whose keys may live on different masters: the key that routes it, and how to queue it. */
export interface RoutedCommand {
  key: string;
  add(pipeline: ChainableCommander): void;
}

/**
 * Runs commands whose keys may live on different Redis Cluster masters (queues with a slot each):
 * one pipeline per master, all at once; on a single server one pipeline. Replies come back in the
 * order of the commands; the first error rejects.
 */
export async function execPerNode(redis: Redis, commands: readonly RoutedCommand[]): Promise<unknown[]> {
  const replies = new Array<unknown>(commands.length);
  let pending = commands.map((_, i) => i);
  for (let attempt = 1; ; attempt++) {
    const results = await execGroupedByNode(
      redis,
      pending.map((i) => commands[i]!),
    );
    const redirected: number[] = [];
    results.forEach(([error, value], j) => {
      const index = pending[j]!;
      if (!error) replies[index] = value;
      else if (isRedirection(error) && attempt < maxRedirectedAttempts) redirected.push(index);
      else throw error;
    });
    if (redirected.length === 0) return replies;
    // A command redirected (MOVED, ASK) or refused during a failover or resharding was not run: it
    // is sent again, regrouped by the refreshed slot map, a bounded number of times. A pipeline of
    // several slots is not retried by ioredis itself unless every reply is the same redirection.
    await refreshSlots(redis);
    await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    pending = redirected;
  }
}

const maxRedirectedAttempts = 6;

function isRedirection(error: Error): boolean {
  return /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /.test(error.message);
}

function refreshSlots(redis: Redis): Promise<void> {
  if (!(redis instanceof Cluster)) return Promise.resolve();
  return new Promise((resolve) => (redis as Cluster).refreshSlotsCache(() => resolve()));
}

/** One pipeline per master (per slot before the slot map is known); [error, reply] per command. */
async function execGroupedByNode(
  redis: Redis,
  commands: readonly RoutedCommand[],
): Promise<[Error | null, unknown][]> {
  const groups = new Map<string, number[]>();
  const cluster = redis instanceof Cluster ? (redis as Cluster) : undefined;
  commands.forEach((command, i) => {
    let group = '';
    if (cluster) {
      const slot = keySlot(command.key);
      group = cluster.slots[slot]?.[0] ?? `slot:${slot}`;
    }
    const members = groups.get(group);
    if (members) members.push(i);
    else groups.set(group, [i]);
  });
  const replies = new Array<[Error | null, unknown]>(commands.length);
  await Promise.all(
    [...groups.values()].map(async (members) => {
      const pipeline = redis.pipeline();
      for (const i of members) commands[i]!.add(pipeline);
      let results: [Error | null, unknown][];
      try {
        results = (await pipeline.exec()) ?? [];
      } catch (error) {
        // The slot map changed between grouping and sending: every command of the group goes again.
        if (!(error instanceof Error) || !error.message.includes('same slots allocation group')) throw error;
        results = members.map(() => [new Error('MOVED (regroup)'), undefined]);
      }
      members.forEach((commandIndex, j) => {
        replies[commandIndex] = results[j] ?? [new Error('no reply in the pipeline'), undefined];
      });
    }),
  );
  return replies;
}

/** Resolves once the connection answers PING, or rejects after timeoutMs. */
export async function waitForRedis(redis: Redis, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (redis.status === 'ready') {
        await redis.ping();
        return;
      }
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `Redis did not answer within ${timeoutMs} ms${lastError ? `: ${(lastError as Error).message}` : ''}`,
  );
}

/**
 * The oldest Redis Jobbers runs on: the lifecycle exporter detects a trimmed event stream through
 * XINFO STREAM's max-deleted-entry-id and entries-added, which Redis 7.0 introduced.
 */
export const minimumRedisVersion = '7.0.0';

/** True when `version` (e.g. "7.2.4") is minimumRedisVersion or newer. */
export function isSupportedRedisVersion(version: string): boolean {
  const have = version.split('.').map(Number);
  const need = minimumRedisVersion.split('.').map(Number);
  for (let i = 0; i < need.length; i++) {
    const part = have[i] ?? 0;
    if (Number.isNaN(part)) return false;
    if (part !== need[i]) return part > need[i]!;
  }
  return true;
}

/** The server's version from INFO server. */
export async function readRedisVersion(redis: Redis): Promise<string> {
  const info = await redis.info('server');
  const match = /^redis_version:(\S+)/m.exec(info);
  if (!match) throw new Error('INFO server has no redis_version');
  return match[1]!;
}

/** Throws REDIS_VERSION_UNSUPPORTED, naming both versions, when the server is older than 7.0. */
export async function requireSupportedRedis(redis: Redis): Promise<void> {
  const version = await readRedisVersion(redis);
  if (!isSupportedRedisVersion(version)) {
    throw new JobbersError(
      'REDIS_VERSION_UNSUPPORTED',
      `Redis ${version} is too old: Jobbers needs Redis >= ${minimumRedisVersion} (its lifecycle exporter detects a trimmed event stream with XINFO STREAM fields added in 7.0)`,
      { version, minimum: minimumRedisVersion },
    );
  }
}

/**
 * Logs a connection's outage once when it starts (its first error) and once when it ends, instead
 * of at every reconnection attempt.
 */
export function logConnectionOutages(connection: Redis, logger: Logger, name: string): void {
  let downSince: number | undefined;
  connection.on('error', (error: Error) => {
    if (downSince !== undefined) return;
    downSince = Date.now();
    logger.warn({ err: error.message, connection: name }, 'redis connection lost: reconnecting');
  });
  connection.on('ready', () => {
    if (downSince === undefined) return;
    logger.info({ connection: name, downForMs: Date.now() - downSince }, 'redis connection restored');
    downSince = undefined;
  });
}
