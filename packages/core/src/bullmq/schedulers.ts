// What Jobbers relies on of BullMQ's Job Schedulers: the ids of the jobs a scheduler adds, and where
// a job carries the scheduler and the tick it was added for.
import type { Job } from 'bullmq';

/** A scheduler's job id: `repeat:<scheduler id>:<tick, ms since the epoch>` (JobScheduler.getSchedulerNextJobId). */
export const scheduledJobIdPattern = /^repeat:([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):(\d{1,16})$/;

/** The schedule and tick a job was added for by a Job Scheduler, or undefined for any other job. */
export function scheduledTickOf(job: Job): { scheduleId: string; tickMs: number } | undefined {
  const scheduleId = job.repeatJobKey;
  if (!scheduleId) return undefined;
  // BullMQ stores the tick as the job option prevMillis; the job id carries it too.
  const fromOpts = (job.opts as { prevMillis?: number }).prevMillis;
  const tickMs =
    typeof fromOpts === 'number' ? fromOpts : Number(scheduledJobIdPattern.exec(job.id ?? '')?.[2]);
  return Number.isFinite(tickMs) ? { scheduleId, tickMs } : undefined;
}
