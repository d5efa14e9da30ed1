// A job held back by a rate limit: moved from active to delayed without using an attempt, with its
// delayed time recorded in its hash first, so the exporter and the recount can tell it from a job
// delayed by a backoff or a submit delay.
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { scripts } from '../lua/registry.js';
import { jobHashField } from './job-hash.js';
import { jobKey } from './keys.js';

interface MoveToDelayedBackend {
  moveToDelayed(
    jobId: string,
    timestamp: number,
    delay: number,
    token?: string,
    opts?: { skipAttempt?: boolean },
  ): Promise<unknown>;
}

/**
 * Moves the active job (held with `token`) to delayed for `waitMs` without using an attempt
 * (BullMQ's moveToDelayed with skipAttempt, as Job.moveToDelayed calls it), marked rate-limited.
 * BullMQ's `delayed` event and delayed score carry `now + waitMs` exactly: the time passed here,
 * not one BullMQ reads from the clock again. Throws BullMQ's errors (see isLostJobError) when this
 * worker no longer holds the job. Returns the time the job is delayed to.
 */
export async function moveToDelayedRateLimited(
  redis: Redis,
  prefix: string,
  job: Job,
  token: string,
  waitMs: number,
): Promise<number> {
  const delay = Math.max(0, Math.round(waitMs));
  const now = Date.now();
  const runAt = now + delay;
  const backend = (job as unknown as { backend?: MoveToDelayedBackend }).backend;
  if (typeof backend?.moveToDelayed !== 'function')
    throw new Error(
      'this BullMQ version has no moveToDelayed on its job backend; packages/core/src/bullmq needs updating',
    );
  await scripts.markRateLimited.run(
    redis,
    [jobKey(prefix, job.queueName, job.id!)],
    [jobHashField.rateLimitedUntil, runAt],
  );
  await backend.moveToDelayed(job.id!, now, delay, token, { skipAttempt: true });
  job.delay = delay;
  return runAt;
}

/** Whether a job delayed to `runAt` (ms, as text) was delayed by a rate limit, from its hash's marks. */
export function isRateLimitedMove(marks: string | undefined, runAt: string): boolean {
  if (!marks || !runAt) return false;
  return ` ${marks} `.includes(` ${runAt} `);
}
