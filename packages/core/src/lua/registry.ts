// Every Lua script Jobbers runs in Redis, one a `.lua` file whose header names each KEYS and ARGV
// entry and what it returns. The files sit beside this module (and in bullmq/lua/ for those that
// depend on how BullMQ stores jobs); the build copies them into dist. Each is read once, when this
// module loads, and runs as an ioredis command (EVALSHA, with the script sent again on NOSCRIPT).
// Adding a script is adding its file and one typed entry in `scripts` below.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ChainableCommander, Cluster, Redis } from 'ioredis';

export type ScriptArg = string | number | Buffer;
type Connection = Redis | Cluster;
type ScriptCommand = (...args: ScriptArg[]) => unknown;

/**
 * One Lua script with the types of its keys, its arguments and its reply. `numberOfKeys` is the
 * length of Keys, or 'variable' when the caller passes any number of keys.
 */
export class RedisScript<Keys extends readonly ScriptArg[], Args extends readonly ScriptArg[], Reply> {
  /** The script's text, as Redis runs it. */
  readonly lua: string;
  /** Its SHA1, the name Redis caches it under. */
  readonly sha: string;

  constructor(
    /** The ioredis command it is defined as (on each connection that runs it). */
    readonly command: string,
    /** Its file, relative to packages/core/src. */
    readonly file: string,
    readonly numberOfKeys: number | 'variable',
  ) {
    this.lua = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
    this.sha = createHash('sha1').update(this.lua).digest('hex');
  }

  /** Defines the script as a command of `connection`, once; pipelines made afterwards carry it. */
  define(connection: Connection): void {
    if (typeof (connection as unknown as Record<string, unknown>)[this.command] === 'function') return;
    connection.defineCommand(this.command, {
      lua: this.lua,
      ...(this.numberOfKeys === 'variable' ? {} : { numberOfKeys: this.numberOfKeys }),
    });
  }

  /** Runs the script on `connection` (defining it there first if need be). */
  run(connection: Connection, keys: Keys, args: Args): Promise<Reply> {
    this.define(connection);
    return this.commandOf(connection)(...this.callArgs(keys, args)) as Promise<Reply>;
  }

  /**
   * Queues the script on a pipeline or MULTI; its reply comes with exec. The script must have been
   * defined on the connection before the pipeline was made (see define).
   */
  queue(commands: ChainableCommander, keys: Keys, args: Args): void {
    this.commandOf(commands)(...this.callArgs(keys, args));
  }

  private commandOf(target: object): ScriptCommand {
    const command = (target as Record<string, unknown>)[this.command];
    if (typeof command !== 'function') {
      throw new Error(
        `the Lua script ${this.file} is not defined on this pipeline: define it on the connection before making the pipeline`,
      );
    }
    return (command as ScriptCommand).bind(target);
  }

  private callArgs(keys: Keys, args: Args): ScriptArg[] {
    return this.numberOfKeys === 'variable' ? [keys.length, ...keys, ...args] : [...keys, ...args];
  }
}

/** A tuple of keys has its length as the number of keys; an array of any length is 'variable'. */
type NumberOfKeys<Keys extends readonly ScriptArg[]> = number extends Keys['length']
  ? 'variable'
  : Keys['length'];

function script<Keys extends readonly ScriptArg[], Args extends readonly ScriptArg[], Reply>(
  command: string,
  file: string,
  numberOfKeys: NumberOfKeys<Keys>,
): RedisScript<Keys, Args, Reply> {
  return new RedisScript<Keys, Args, Reply>(command, file, numberOfKeys);
}

type Key = string;

export const scripts = {
  claimId: script<readonly Key[], [claim: string, ttlMs: number], [string, string]>(
    'jobbersClaimId',
    'lua/claim-id.lua',
    'variable',
  ),
  claimIds: script<readonly Key[], readonly ScriptArg[], [string, string][]>(
    'jobbersClaimIds',
    'lua/claim-ids.lua',
    'variable',
  ),
  releaseClaims: script<readonly Key[], readonly string[], number>(
    'jobbersReleaseClaims',
    'lua/release-claims.lua',
    'variable',
  ),
  idTaken: script<readonly Key[], readonly ScriptArg[], [string, string] | null>(
    'jobbersIdTaken',
    'lua/id-taken.lua',
    'variable',
  ),
  releaseIfHeld: script<[claimOrLock: Key], [value: string], number>(
    'jobbersReleaseIfHeld',
    'lua/release-if-held.lua',
    1,
  ),
  dropDanglingId: script<[job: Key, source: Key], [id: string, kind: 'list' | 'zset'], number>(
    'jobbersDropDangling',
    'lua/drop-dangling-id.lua',
    2,
  ),
  extendLeaseWithHeartbeat: script<
    [lock: Key, stalled: Key, job: Key],
    [token: string, leaseMs: number, id: string, nowMs: number, heartbeatField: string],
    number
  >('jobbersHeartbeat', 'bullmq/lua/extend-lease-with-heartbeat.lua', 3),
  readEvents: script<[stream: Key], [exclusiveStart: string, count: number], string>(
    'jobbersReadEvents',
    'lua/read-events.lua',
    1,
  ),
  exporterLookup: script<
    [stateHash: Key],
    [
      queueKeyPrefix: string,
      jobbersPrefix: string,
      unknownJobs: string,
      activatedJobs: string,
      maybeYielded: string,
      bookkeepingPrefix: string,
      takenByField: string,
      delayedJobs: string,
      rateLimitedUntilField: string,
    ],
    string
  >('jobbersExporterLookup', 'lua/exporter-lookup.lua', 1),
  /** Run through EventStreamReader.evalScript (its arguments are many lists), never as a command. */
  exporterCommit: script<[stateHash: Key, leaderLock: Key], string[], number>(
    'jobbersExporterCommit',
    'lua/exporter-commit.lua',
    2,
  ),
  exporterReconcile: script<
    [stateHash: Key],
    [queueKeyPrefix: string, jobbersPrefix: string],
    [string, string, ...number[]]
  >('jobbersReconcile', 'lua/exporter-reconcile.lua', 1),
  leaseHold: script<[lease: Key], [token: string, leaseMs: number], 0 | 1 | 2>(
    'jobbersLeaseHold',
    'lua/lease-hold.lua',
    1,
  ),
  leaseRenew: script<[lease: Key], [token: string, leaseMs: number], 0 | 1>(
    'jobbersLeaseRenew',
    'lua/lease-renew.lua',
    1,
  ),
  oldestUnappliedEvent: script<[stateHash: Key, stream: Key], [], [number, string]>(
    'jobbersOldestUnapplied',
    'lua/oldest-unapplied-event.lua',
    2,
  ),
  metricsApplyBatch: script<readonly Key[], ScriptArg[], 0 | 1>(
    'jobbersMetricsApplyBatch',
    'lua/metrics-apply-batch.lua',
    'variable',
  ),
  recountBegin: script<
    [progress: Key, leaderLock: Key],
    [token: string, recountPrefix: string, streamPos: string, streamAdded: number, restart: '0' | '1'],
    1 | 0 | -1
  >('jobbersBeginRecount', 'lua/recount-begin.lua', 2),
  recountChunk: script<
    [progress: Key, leaderLock: Key, stream: Key],
    [
      token: string,
      queueKeyPrefix: string,
      recountPrefix: string,
      chunkSize: number,
      leaseMs: number,
      rateLimitedUntilField: string,
    ],
    [read: number, done: 0 | 1, moved: string] | -1
  >('jobbersRecountChunk', 'bullmq/lua/recount-chunk.lua', 3),
  recountSwap: script<
    [stateHash: Key, leaderLock: Key, progress: Key],
    [token: string, jobbersPrefix: string, recountPrefix: string],
    1 | -1
  >('jobbersSwapRecount', 'lua/recount-swap.lua', 3),
  workflowCreate: script<[workflow: Key, index: Key, labels: Key, startedCounter: Key], ScriptArg[], 0 | 1>(
    'jobbersCreateWorkflow',
    'lua/workflow-create.lua',
    4,
  ),
  workflowAdvance: script<
    [workflow: Key],
    [node: string, outcome: 'completed' | 'failed', nowMs: number, result: string],
    [ready: string, state: 'running' | 'completed' | 'failed', finished: 0 | 1] | []
  >('jobbersAdvanceWorkflow', 'lua/workflow-advance.lua', 1),
  workflowMarkSubmitted: script<[workflow: Key], string[], 1>(
    'jobbersMarkSubmitted',
    'lua/workflow-mark-submitted.lua',
    1,
  ),
  workflowCancel: script<[workflow: Key], [nowMs: number], [before: string, submitted: string]>(
    'jobbersCancelWorkflow',
    'lua/workflow-cancel.lua',
    1,
  ),
  workflowMarkCancelled: script<[workflow: Key], ScriptArg[], number>(
    'jobbersMarkCancelled',
    'lua/workflow-mark-cancelled.lua',
    1,
  ),
  workflowRetry: script<[workflow: Key], [], [before: string, failed: string, ready: string]>(
    'jobbersRetryWorkflow',
    'lua/workflow-retry.lua',
    1,
  ),
  recordAttemptWorkers: script<readonly Key[], [field: string, ...lines: string[]], number>(
    'jobbersRecordAttemptWorkers',
    'lua/record-attempt-workers.lua',
    'variable',
  ),
  recordStatsMinute: script<
    [history: Key],
    [minuteMs: number, snapshot: string, oldestKeptMs: number, ttlMs: number],
    0 | 1
  >('jobbersRecordStatsMinute', 'lua/record-stats-minute.lua', 1),
  rateLimitAcquire: script<[log: Key, wakeHint: Key], [max: number, perMs: number, member: string], number>(
    'jobbersRateLimitAcquire',
    'lua/rate-limit-acquire.lua',
    2,
  ),
  markRateLimited: script<[jobHash: Key], [field: string, runAtMs: number], 0 | 1>(
    'jobbersMarkRateLimited',
    'bullmq/lua/mark-rate-limited.lua',
    1,
  ),
  recordRoleActivity: script<[roles: Key], [role: string], 1>(
    'jobbersRecordRole',
    'lua/record-role-activity.lua',
    1,
  ),
} as const;
