// Resolving incidents (tasks whose retries ran out, in BullMQ's failed set): one by id, or every
// incident matching a filter in bounded rounds. A resolved incident runs again with a fresh set of
// retries, while its attempt number keeps counting: BullMQ's attemptsMade (atm) is reset,
// attemptsStarted (ats, the task's ctx.attempt) is kept.
import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { JobbersError } from './errors.js';
import type { IncidentRetrySummary } from './schemas.js';
import { type ResolvedFilter, type ScanPosition, scanTasks } from './tasks-query.js';

export const defaultIncidentRetryLimit = 1000;
export const maxIncidentRetryLimit = 10_000;
/** Incidents retried per round of a mass retry. */
export const incidentRetryBatchSize = 100;

export type IncidentRetryOutcome =
  | { outcome: 'retried' }
  | { outcome: 'not-found' }
  | { outcome: 'not-failed'; state: string };

/**
 * Moves one failed job back to waiting through BullMQ's reprocessJob, which emits `waiting` with
 * prev=failed: the exporter counts incident-resolved. Anything but a failed job is left as it is.
 */
export async function retryIncident(queue: Queue, id: string): Promise<IncidentRetryOutcome> {
  const job = await Job.fromId(queue, id);
  if (!job) return { outcome: 'not-found' };
  try {
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: false });
    return { outcome: 'retried' };
  } catch (error) {
    // reprocessJob refuses a job that is gone or not in the failed set; its answer tells us which.
    const state = await queue.getJobState(id);
    if (state === 'unknown') return { outcome: 'not-found' };
    if (state !== 'failed') return { outcome: 'not-failed', state };
    throw error;
  }
}

export function checkIncidentRetryLimit(limit: number | undefined): number {
  const chosen = limit ?? defaultIncidentRetryLimit;
  if (!Number.isInteger(chosen) || chosen < 1 || chosen > maxIncidentRetryLimit) {
    throw new JobbersError('INVALID_FILTER', `limit must be 1..${maxIncidentRetryLimit}, got ${limit}`);
  }
  return chosen;
}

/**
 * Walks the failed sets newest first, retrying up to `limit` matching incidents, incidentRetryBatchSize
 * per round. The walk resumes below the last score it passed, so a retried task that fails again
 * (a newer score) is not met twice in one run.
 */
export async function retryIncidents(
  redis: Redis,
  prefix: string,
  queueOf: (name: string) => Queue,
  filter: ResolvedFilter,
  limit: number,
): Promise<IncidentRetrySummary> {
  const summary: IncidentRetrySummary = { retried: 0, matched: 0, more: false };
  let from: ScanPosition | undefined;
  for (;;) {
    const want = Math.min(incidentRetryBatchSize, limit - summary.matched);
    const { found, next } = await scanTasks(redis, prefix, filter, from, want);
    summary.matched += found.length;
    const outcomes = await Promise.all(found.map((task) => retryIncident(queueOf(task.queue), task.id)));
    summary.retried += outcomes.filter((o) => o.outcome === 'retried').length;
    if (!next) return summary;
    if (summary.matched >= limit) return { ...summary, more: true };
    from = next;
  }
}
