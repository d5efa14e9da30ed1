// The registry of live workers: each worker keeps a hash with a TTL (role, host, pid, queues,
// concurrency, the tasks it runs now) and its id in an index scored by when it was last seen; a
// clean exit removes both, a killed worker drops out when its TTL passes. Each attempt also records
// which worker ran it, in a field of the job's own hash, so it goes when the task is removed.
import type { Redis } from 'ioredis';
import { jobHashField } from './bullmq/job-hash.js';
import { jobKey } from './bullmq/keys.js';
import { sharedKey } from './keys.js';
import { scripts } from './lua/registry.js';

/** A worker unseen for this long is gone. */
export const workerTtlMs = 15_000;

export interface RunningTask {
  taskId: string;
  queue: string;
  task: string;
  attempt: number;
  /** When this attempt started (ms since the epoch). */
  startedAt: number;
}

export interface WorkerRecord {
  id: string;
  role: string;
  host: string;
  pid: number;
  queues: string[];
  concurrency: number;
  startedAt: number;
  lastSeenAt: number;
  running: RunningTask[];
}

export interface AttemptWorker {
  attempt: number;
  worker: string;
  startedAt: number;
}

function workersIndexKey(prefix: string): string {
  return sharedKey(prefix, 'workers');
}

function workerKey(prefix: string, id: string): string {
  return sharedKey(prefix, `worker:${id}`);
}

/** Writes the worker's record and renews its TTL. */
export async function writeWorkerRecord(redis: Redis, prefix: string, record: WorkerRecord): Promise<void> {
  const key = workerKey(prefix, record.id);
  await redis
    .multi()
    .hset(key, {
      role: record.role,
      host: record.host,
      pid: record.pid,
      queues: JSON.stringify(record.queues),
      concurrency: record.concurrency,
      startedAt: record.startedAt,
      lastSeenAt: record.lastSeenAt,
      running: JSON.stringify(record.running),
    })
    .pexpire(key, workerTtlMs)
    .zadd(workersIndexKey(prefix), record.lastSeenAt, record.id)
    .exec();
}

export async function removeWorkerRecord(redis: Redis, prefix: string, id: string): Promise<void> {
  await redis.multi().del(workerKey(prefix, id)).zrem(workersIndexKey(prefix), id).exec();
}

/** Every live worker, by role, host and pid. Drops from the index the workers whose TTL passed. */
export async function listWorkers(redis: Redis, prefix: string, nowMs = Date.now()): Promise<WorkerRecord[]> {
  const index = workersIndexKey(prefix);
  await redis.zremrangebyscore(index, '-inf', `(${nowMs - workerTtlMs}`);
  const ids = await redis.zrange(index, 0, -1);
  const read = redis.pipeline();
  for (const id of ids) read.hgetall(workerKey(prefix, id));
  const replies = (await read.exec()) ?? [];
  const workers: WorkerRecord[] = [];
  ids.forEach((id, i) => {
    const [error, hash] = replies[i] ?? [];
    const h = hash as Record<string, string> | undefined;
    if (error || !h || !h.role) return;
    workers.push({
      id,
      role: h.role,
      host: h.host ?? '',
      pid: Number(h.pid),
      queues: JSON.parse(h.queues ?? '[]') as string[],
      concurrency: Number(h.concurrency),
      startedAt: Number(h.startedAt),
      lastSeenAt: Number(h.lastSeenAt),
      running: JSON.parse(h.running ?? '[]') as RunningTask[],
    });
  });
  return workers.sort(
    (a, b) => a.role.localeCompare(b.role) || a.host.localeCompare(b.host) || a.pid - b.pid,
  );
}

/**
 * Records which worker runs each attempt (the job hash's attempts field), batched: the attempts a
 * worker starts in one turn of its event loop (or within `delayMs`, when given) are written in one
 * script call per queue, so a busy worker pays a fraction of a round trip per task for it instead
 * of one. The record is sent right after the turn that started the attempt, so a reader who has
 * seen the attempt end finds it; one started in the very turn a SIGKILL ends may go unrecorded
 * (BullMQ's processedBy still names the worker of the last attempt).
 */
export class AttemptWorkerRecorder {
  private pending = new Map<string, { keys: string[]; lines: string[] }>();
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly onError: (error: unknown, queue: string) => void,
    private readonly delayMs = 0,
  ) {}

  record(queue: string, taskId: string, entry: AttemptWorker): void {
    let batch = this.pending.get(queue);
    if (!batch) {
      batch = { keys: [], lines: [] };
      this.pending.set(queue, batch);
    }
    batch.keys.push(jobKey(this.prefix, queue, taskId));
    batch.lines.push(`${entry.attempt}|${entry.worker}|${entry.startedAt}`);
    this.timer ??=
      this.delayMs > 0
        ? setTimeout(() => void this.flush(), this.delayMs)
        : setImmediate(() => void this.flush());
  }

  /** Writes what is pending now; resolves once it (and any write before it) has been sent. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
    }
    this.timer = undefined;
    const batches = [...this.pending];
    this.pending = new Map();
    // Sent now, not after the previous write's reply: commands on one connection run in the order
    // sent. Chained, each turn's batch waited a round trip of its own, and under a drain the batches
    // queued faster than round trips came back (each holding its strings, records written late).
    const sent = Promise.all(
      batches.map(([queue, { keys, lines }]) =>
        scripts.recordAttemptWorkers.run(this.redis, keys, [jobHashField.attemptWorkers, ...lines]).then(
          () => undefined,
          (error: unknown) => this.onError(error, queue),
        ),
      ),
    );
    this.flushing = Promise.all([this.flushing, sent]).then(() => undefined);
    return this.flushing;
  }
}

/** Parses the job hash's attempts field, oldest first. */
export function parseAttemptWorkers(field: string | null | undefined): AttemptWorker[] {
  if (!field) return [];
  return field
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [attempt, worker, startedAt] = line.split('|');
      return { attempt: Number(attempt), worker: worker ?? '', startedAt: Number(startedAt) };
    });
}
