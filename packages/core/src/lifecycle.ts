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
  'incident-raised',
  'incident-resolved',
  'completed',
  'failed',
  'removed',
] as const;

export type Transition = (typeof transitions)[number];

/**
 * A worker calls this just before it gives a job back unfinished (ctx.yield, shutdown re-enqueue),
 * so the exporter counts the move as `yielded` rather than a failed attempt.
 */
export async function markYield(redis: Redis, prefix: string, queue: string, jobId: string): Promise<void> {
  await redis.hset(jobbersKey(prefix, queue, 'yields'), jobId, Date.now());
}

/** Undoes markYield when the move back did not happen (the worker had lost the job). */
export async function unmarkYield(redis: Redis, prefix: string, queue: string, jobId: string): Promise<void> {
  await redis.hdel(jobbersKey(prefix, queue, 'yields'), jobId);
}
