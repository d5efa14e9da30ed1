// The lifecycle model: the transitions every task goes through, as counted in
// jobbers_job_transitions_total, and the markers workers leave for the exporter.
import type { Redis } from 'ioredis';
import { jobbersKey } from './keys.js';

export const transitions = [
  'created',
  'activated',
  'failed-with-retries',
  'failed-with-backoff',
  'backoff-recurred',
  'timed-out',
  'yielded',
  'rate-limited',
  'rate-limit-ended',
  'incident-raised',
  'incident-resolved',
  'completed',
  'failed',
  'removed',
] as const;

export type Transition = (typeof transitions)[number];

/**
 * A worker calls this just before it gives a job back unfinished (ctx.yield, shutdown re-enqueue),
 * so the exporter counts the move as `yielded` rather than a failed attempt. A count, not a flag:
 * a job may be given back twice before the exporter applies the first.
 */
export async function markYield(redis: Redis, prefix: string, queue: string, jobId: string): Promise<void> {
  await redis.hincrby(jobbersKey(prefix, queue, 'yields'), jobId, 1);
}

/** Undoes markYield when the move back did not happen (the worker had lost the job). */
export async function unmarkYield(redis: Redis, prefix: string, queue: string, jobId: string): Promise<void> {
  const key = jobbersKey(prefix, queue, 'yields');
  if ((await redis.hincrby(key, jobId, -1)) <= 0) await redis.hdel(key, jobId);
}
