// How BullMQ names its Redis keys: `<prefix>:<queue>` for the queue, `<prefix>:<queue>:<id>` for a
// job's hash, `<prefix>:<queue>:<name>` for the queue's own keys (`wait`, `events`, `stalled`, ...).
import { QueueKeys } from 'bullmq';

export function queueKey(prefix: string, queue: string): string {
  return `${prefix}:${queue}`;
}

export function jobKey(prefix: string, queue: string, id: string): string {
  return `${prefix}:${queue}:${id}`;
}

/** The key holding the token of the worker that has the job active (its lease). */
export function jobLockKey(prefix: string, queue: string, id: string): string {
  return `${jobKey(prefix, queue, id)}:lock`;
}

/** The names of the queue's own keys, which a job id must never equal (it would name that key). */
export const queueOwnKeyNames: readonly string[] = Object.keys(new QueueKeys().getKeys('queue')).filter(
  (name) => name !== '',
);

/** One of the queue's own keys, e.g. `stalled` or `completed`. */
export function queueOwnKey(prefix: string, queue: string, name: string): string {
  return `${queueKey(prefix, queue)}:${name}`;
}

/**
 * The keys that hold a queue's jobs by state, and their type: lists in the order jobs entered them,
 * sorted sets scored by run-at time (delayed), priority (prioritized) or finish time (completed,
 * failed). `wait` holds the waiting jobs of a running or paused queue (BullMQ 6; see job-counts.ts);
 * `paused` holds those of a queue BullMQ 5 paused, until it is resumed.
 */
export const jobStateStores = {
  wait: 'list',
  paused: 'list',
  active: 'list',
  prioritized: 'zset',
  delayed: 'zset',
  completed: 'zset',
  failed: 'zset',
} as const;

export type JobStateStore = keyof typeof jobStateStores;

export function jobStateSource(
  prefix: string,
  queue: string,
  store: JobStateStore,
): { key: string; kind: 'list' | 'zset' } {
  return { key: queueOwnKey(prefix, queue, store), kind: jobStateStores[store] };
}
