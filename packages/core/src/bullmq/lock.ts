// A job's lease is BullMQ's lock: `<job key>:lock` holds the token of the worker that has the job
// active, with the lease as its expiry; the stalled checker recovers jobs whose lock is gone.
import type { Redis } from 'ioredis';
import { scripts } from '../lua/registry.js';
import { jobHashField } from './job-hash.js';
import { jobKey, jobLockKey, queueOwnKey } from './keys.js';

/** The token holding each job's lock now (null: no lock, the lease is gone). */
export async function readLockTokens(
  redis: Redis,
  prefix: string,
  jobs: readonly { queue: string; id: string }[],
): Promise<(string | null)[]> {
  return Promise.all(jobs.map(({ queue, id }) => redis.get(jobLockKey(prefix, queue, id))));
}

/**
 * Extends the job's lease and records the heartbeat time in one step, only while this token holds the
 * lock. Returns whether it still held it.
 */
export async function extendLeaseWithHeartbeat(
  redis: Redis,
  job: { prefix: string; queue: string; id: string; token: string; leaseMs: number; nowMs: number },
): Promise<boolean> {
  const held = await scripts.extendLeaseWithHeartbeat.run(
    redis,
    [
      jobLockKey(job.prefix, job.queue, job.id),
      queueOwnKey(job.prefix, job.queue, 'stalled'),
      jobKey(job.prefix, job.queue, job.id),
    ],
    [job.token, job.leaseMs, job.id, job.nowMs, jobHashField.lastHeartbeat],
  );
  return held === 1;
}

/** BullMQ refused a move because this worker no longer holds the job's lock (or the job moved on). */
export function isLostJobError(error: unknown): boolean {
  return (
    error instanceof Error &&
    /^(Missing lock for job|Lock mismatch for job|Missing key for job|Job .+ is not in the active state)/.test(
      error.message,
    )
  );
}
