// Env and flags are parsed once, here, into one typed config with messages naming the culprit.

import { slotPerQueueMarker } from './bullmq/keys.js';
import { parseDurationMs } from './durations.js';
import { JobbersError } from './errors.js';

export interface CommonConfig {
  redisUrl: string;
  prefix: string;
  tasksModule: string;
  roles?: string;
  metricsFlushMs: number;
  /** JOBBERS_REDIS_COMMAND_TIMEOUT_MS: a Redis command without a reply for this long fails. */
  redisCommandTimeoutMs: number;
}

export interface ManagerConfig extends CommonConfig {
  host: string;
  port: number;
  apiKeys: string[];
  bodyLimitBytes: number;
  runExporter: boolean;
  /**
   * JOBBERS_METRICS_PARTITION_LABEL: a `partition` label on the job gauges of partitioned queues.
   * @default false
   */
  metricsPartitionLabel: boolean;
  /** How long the exporter's leadership of a queue lasts unless renewed (it renews every third). @default 10000 */
  exporterLeaseMs: number;
}

export interface WorkerConfig extends CommonConfig {
  role: string;
  concurrentTasks: number;
  ttlTasks: number;
  metricsPort: number;
  queueCapacity: Record<string, number>;
  shutdownGraceMs: number;
  leaseMs: number;
}

type Env = Record<string, string | undefined>;

/** What LOG_LEVEL may be (pino's levels); anything else stops the process at start. */
export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

class Problems {
  readonly list: string[] = [];
  add(message: string) {
    this.list.push(message);
  }
  throwIfAny() {
    if (this.list.length > 0) {
      throw new JobbersError(
        'CONFIG_INVALID',
        `invalid configuration:\n  - ${this.list.join('\n  - ')}`,
        this.list,
      );
    }
  }
}

function readRedisUrl(env: Env, problems: Problems): string {
  const url = env.REDIS_URL?.trim() || 'redis://127.0.0.1:6379';
  if (url.startsWith('redis+cluster://')) {
    const nodes = url.slice('redis+cluster://'.length).split(',').filter(Boolean);
    if (nodes.length === 0 || nodes.some((n) => !/^[^:/\s]+(:\d{1,5})?$/.test(n.trim()))) {
      problems.add(`REDIS_URL "${url}" must list cluster nodes as redis+cluster://host:port,host:port`);
    }
    return url;
  }
  try {
    const parsed = new URL(url);
    if (!['redis:', 'rediss:'].includes(parsed.protocol)) {
      problems.add(`REDIS_URL "${url}" must start with redis:// or rediss://`);
    } else if (!parsed.hostname) {
      problems.add(`REDIS_URL "${url}" has no host`);
    }
  } catch {
    problems.add(`REDIS_URL "${url}" is not a URL (expected e.g. redis://127.0.0.1:6379)`);
  }
  return url;
}

/**
 * The prefix keys are built from. On a Redis Cluster, a JOBBERS_PREFIX without a hash tag gives each
 * queue a hash tag of its own (`<prefix>:{<queue>}:<queue>:*`), so queues spread over the masters;
 * one with a tag (`{jobbers}`) keeps every key in that one slot, the layout of earlier releases. A
 * single Redis server keeps the prefix as it is.
 */
export function keyPrefix(redisUrl: string, prefix: string): string {
  const clustered = redisUrl.startsWith('redis+cluster://');
  return clustered && !/\{[^}]+\}/.test(prefix) ? `${prefix}${slotPerQueueMarker}` : prefix;
}

function readInt(
  env: Env,
  name: string,
  fallback: number,
  problems: Problems,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.add(`${name}="${raw}" must be a whole number between ${min} and ${max}`);
    return fallback;
  }
  return value;
}

function readCommon(env: Env, problems: Problems): CommonConfig {
  const prefix = env.JOBBERS_PREFIX?.trim() || 'jobbers';
  if (!/^[A-Za-z0-9_{}.-]{1,64}$/.test(prefix)) {
    problems.add(
      `JOBBERS_PREFIX="${prefix}" must be 1-64 of [A-Za-z0-9_{}.-] (braces give a Redis Cluster hash tag)`,
    );
  }
  const tasksModule = env.JOBBERS_TASKS?.trim() ?? '';
  if (!tasksModule) {
    problems.add(
      'JOBBERS_TASKS is not set: name the module that defines your tasks (e.g. JOBBERS_TASKS=@jobbers/examples)',
    );
  }
  if (prefix.includes(slotPerQueueMarker)) {
    problems.add(
      `JOBBERS_PREFIX="${prefix}" holds an empty hash tag {}: give a tag with a name ({jobbers}) or none`,
    );
  }
  const redisUrl = readRedisUrl(env, problems);
  return {
    redisUrl,
    prefix: keyPrefix(redisUrl, prefix),
    tasksModule,
    roles: env.JOBBERS_ROLES,
    metricsFlushMs: readInt(env, 'JOBBERS_METRICS_FLUSH_MS', 1000, problems, 10, 60_000),
    redisCommandTimeoutMs: readInt(env, 'JOBBERS_REDIS_COMMAND_TIMEOUT_MS', 1500, problems, 100, 600_000),
  };
}

/** Empty or blank means no keys (auth off); a value that holds no key (`,`) is a mistake, not "auth off". */
function readApiKeys(env: Env, problems: Problems): string[] {
  const raw = env.JOBBERS_API_KEYS?.trim() ?? '';
  const keys = raw
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  if (raw !== '' && keys.length === 0) {
    problems.add(
      'JOBBERS_API_KEYS is set but names no key: give a comma list of keys, or unset it to turn auth off',
    );
  }
  return keys;
}

/** Checked by the manager and the worker, which log through pino (the cleaner does not read it). */
function checkLogLevel(env: Env, problems: Problems): void {
  const level = env.LOG_LEVEL?.trim();
  if (level && !(logLevels as readonly string[]).includes(level)) {
    problems.add(`LOG_LEVEL="${level}" must be one of ${logLevels.join(', ')}`);
  }
}

function readOnOff(env: Env, name: string, fallback: boolean, problems: Problems): boolean {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  if (raw !== 'on' && raw !== 'off') {
    problems.add(`${name}="${raw}" must be on or off`);
    return fallback;
  }
  return raw === 'on';
}

/** A CLI duration: `500ms`, `30s`, `15m`, `2h`, `7d`, `1w`, or a bare number of milliseconds. */
export function parseFlagDurationMs(raw: string, flag: string): number {
  const ms = parseDurationMs(raw, { bareNumberIsMs: true });
  if (ms === undefined) {
    throw new JobbersError(
      'CONFIG_INVALID',
      `${flag} "${raw}" must be a duration like 500ms, 30s, 15m, 2h or 7d (a bare number is milliseconds)`,
    );
  }
  return ms;
}

/** The variable a CLI flag sets; `duration` flags take units and set milliseconds. */
export type FlagVariable = string | { variable: string; duration: true };

/**
 * The flags the manager and the worker both take: commander's spec and help text (naming the
 * variable and its default), and the variable each sets. Durations take units.
 */
export const sharedFlags: readonly { spec: string; help: string }[] = [
  { spec: '--tasks <module>', help: 'module that defines the tasks (JOBBERS_TASKS; required)' },
  {
    spec: '--redis-url <url>',
    help: 'Redis, or redis+cluster://host:port,... (REDIS_URL; default redis://127.0.0.1:6379)',
  },
  { spec: '--prefix <prefix>', help: 'BullMQ key prefix (JOBBERS_PREFIX; default jobbers)' },
  {
    spec: '--roles <spec>',
    help: 'worker roles, role=queue1,queue2;other=queue3 (JOBBERS_ROLES; default: one role "default" with every queue)',
  },
  {
    spec: '--redis-command-timeout <duration>',
    help: 'a Redis command unanswered this long fails (JOBBERS_REDIS_COMMAND_TIMEOUT_MS; default 1500ms)',
  },
  {
    spec: '--log-level <level>',
    help: 'fatal | error | warn | info | debug | trace | silent (LOG_LEVEL; default info)',
  },
];

export const sharedFlagVariables = {
  tasks: 'JOBBERS_TASKS',
  redisUrl: 'REDIS_URL',
  prefix: 'JOBBERS_PREFIX',
  roles: 'JOBBERS_ROLES',
  redisCommandTimeout: { variable: 'JOBBERS_REDIS_COMMAND_TIMEOUT_MS', duration: true },
  logLevel: 'LOG_LEVEL',
} satisfies Record<string, FlagVariable>;

/**
 * The environment a process runs with: `base`, overridden by each flag given (camelCase keys as
 * commander names them), so one loader validates flags and variables alike.
 */
export function envWithFlags(
  flags: Record<string, string | undefined>,
  variables: Record<string, FlagVariable>,
  base: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const [flag, target] of Object.entries(variables)) {
    const value = flags[flag];
    if (value === undefined) continue;
    if (typeof target === 'string') env[target] = value;
    else {
      const name = `--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      env[target.variable] = String(parseFlagDurationMs(value, name));
    }
  }
  return env;
}

export function loadManagerConfig(env: Env = process.env): ManagerConfig {
  const problems = new Problems();
  const common = readCommon(env, problems);
  checkLogLevel(env, problems);
  const config: ManagerConfig = {
    ...common,
    host: env.MANAGER_HOST?.trim() || '0.0.0.0',
    port: readInt(env, 'MANAGER_PORT', 8080, problems, 0, 65535),
    apiKeys: readApiKeys(env, problems),
    bodyLimitBytes: readInt(env, 'MANAGER_BODY_LIMIT_BYTES', 1024 * 1024, problems, 1024),
    runExporter: readOnOff(env, 'JOBBERS_EXPORTER', true, problems),
    metricsPartitionLabel: readOnOff(env, 'JOBBERS_METRICS_PARTITION_LABEL', false, problems),
    exporterLeaseMs: readInt(env, 'JOBBERS_EXPORTER_LEASE_MS', 10_000, problems, 100, 600_000),
  };
  problems.throwIfAny();
  return config;
}

export function parseQueueCapacity(raw: string | undefined, problems?: Problems): Record<string, number> {
  const capacity: Record<string, number> = {};
  for (const entry of (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [queue, limit] = entry.split('=').map((s) => s?.trim());
    const value = Number(limit);
    if (!queue || !Number.isInteger(value) || value < 1) {
      const message = `WORKER_QUEUE_CAPACITY entry "${entry}" must look like queue=N with N >= 1`;
      if (problems) problems.add(message);
      else throw new JobbersError('CONFIG_INVALID', message);
      continue;
    }
    capacity[queue] = value;
  }
  return capacity;
}

export function loadWorkerConfig(env: Env = process.env): WorkerConfig {
  const problems = new Problems();
  const common = readCommon(env, problems);
  checkLogLevel(env, problems);
  const config: WorkerConfig = {
    ...common,
    role: env.WORKER_ROLE?.trim() || 'default',
    concurrentTasks: readInt(env, 'WORKER_CONCURRENT_TASKS', 10, problems, 1, 10_000),
    ttlTasks: readInt(env, 'WORKER_TTL', 0, problems, 0),
    metricsPort: readInt(env, 'WORKER_METRICS_PORT', 9464, problems, 0, 65535),
    queueCapacity: parseQueueCapacity(env.WORKER_QUEUE_CAPACITY, problems),
    shutdownGraceMs: readInt(env, 'WORKER_SHUTDOWN_GRACE_MS', 30_000, problems, 0),
    leaseMs: readInt(env, 'WORKER_LEASE_MS', 30_000, problems, 1000),
  };
  problems.throwIfAny();
  return config;
}

export function loadCommonConfig(env: Env = process.env, requireTasks = false): CommonConfig {
  const problems = new Problems();
  const common = readCommon(env, problems);
  if (!requireTasks)
    problems.list.splice(
      0,
      problems.list.length,
      ...problems.list.filter((p) => !p.startsWith('JOBBERS_TASKS')),
    );
  problems.throwIfAny();
  return common;
}
