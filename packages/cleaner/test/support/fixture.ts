// A standard spread of tasks for filter tests: 2 queues x 2 task types x 5 states x 2 ages.
import type { SeedJob, SeedState } from './seed.js';

export const oldAgeMs = 3 * 24 * 3_600_000;
export const newAgeMs = 60_000;

const queues = ['alpha', 'beta'];
const tasks = ['report.build', 'mail.send'];
const states: SeedState[] = ['completed', 'failed', 'waiting', 'prioritized', 'delayed'];
const ages = { old: oldAgeMs, new: newAgeMs };

export function standardJobs(): SeedJob[] {
  const jobs: SeedJob[] = [];
  for (const queue of queues)
    for (const task of tasks)
      for (const state of states)
        for (const [age, ageMs] of Object.entries(ages)) {
          jobs.push({ id: `${queue}.${task}.${state}.${age}`, queue, task, state, ageMs });
        }
  return jobs;
}

/** The cleaner state a seeded job counts under: prioritized jobs are waiting (available). */
export function cleanerStateOf(job: SeedJob): string {
  return job.state === 'prioritized' ? 'waiting' : job.state;
}

export const isOld = (job: SeedJob) => job.ageMs === oldAgeMs;
export const isFinished = (job: SeedJob) => job.state === 'completed' || job.state === 'failed';
