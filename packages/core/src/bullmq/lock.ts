// A job's lease is BullMQ's lock: `<job key>:lock` holds the token of the worker that has the job
// active, with the lease as its expiry; the stalled checker recovers jobs whose lock is gone.
import type { Redis } from 'ioredis';
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

// KEYS[1] the job's lock, KEYS[2] the queue's stalled set, KEYS[3] the job's hash.
// ARGV[1] the worker's token, ARGV[2] the lease in ms, ARGV[3] the job id, ARGV[4] now in ms.
// As BullMQ's extendLock (renew the lock only while this token holds it, and take the job out of the
// stalled set), and records the heartbeat time in the job's hash. Returns 1 held, 0 lost.
const heartbeatScript = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SREM', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], '${jobHashField.lastHeartbeat}', ARGV[4])
return 1
`;

type HeartbeatCommand = (
  lock: string,
  stalled: string,
  job: string,
  token: string,
  leaseMs: number,
  id: string,
  now: number,
) => Promise<number>;

/**
 * Extends the job's lease and records the heartbeat time in one step, only while this token holds the
 * lock. Returns whether it still held it.
 */
export async function extendLeaseWithHeartbeat(
  redis: Redis,
  job: { prefix: string; queue: string; id: string; token: string; leaseMs: number; nowMs: number },
): Promise<boolean> {
  const commands = redis as unknown as { jobbersHeartbeat?: HeartbeatCommand };
  if (!commands.jobbersHeartbeat)
    redis.defineCommand('jobbersHeartbeat', { numberOfKeys: 3, lua: heartbeatScript });
  const held = await commands.jobbersHeartbeat!.call(
    redis,
    jobLockKey(job.prefix, job.queue, job.id),
    queueOwnKey(job.prefix, job.queue, 'stalled'),
    jobKey(job.prefix, job.queue, job.id),
    job.token,
    job.leaseMs,
    job.id,
    job.nowMs,
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
