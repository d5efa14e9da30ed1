// How many jobs a queue holds in each state, as Jobbers reports them (GET /v1/queues/:queue,
// jobbers_jobs{state}). BullMQ 6 keeps a paused queue's waiting jobs in `wait` and marks the queue
// paused in its `meta` hash (BullMQ 5 moved them to the `paused` list, where a queue paused before an
// upgrade still keeps them until it is resumed). Jobbers reports the waiting jobs of a paused queue
// as `paused`, as it always has.
import type { ChainableCommander, Redis } from 'ioredis';
import { queueOwnKey } from './keys.js';

export const jobCountStates = [
  'waiting',
  'prioritized',
  'delayed',
  'active',
  'paused',
  'completed',
  'failed',
  'waiting-children',
] as const;

export type JobCountState = (typeof jobCountStates)[number];
export type JobCounts = Record<JobCountState, number>;

/** The reads queueJobCountReads queues, in order, after the paused flag. */
const countReads: [store: string, kind: 'list' | 'zset'][] = [
  ['wait', 'list'],
  ['paused', 'list'],
  ['prioritized', 'zset'],
  ['delayed', 'zset'],
  ['active', 'list'],
  ['completed', 'zset'],
  ['failed', 'zset'],
  ['waiting-children', 'zset'],
];

/** How many replies queueJobCountReads adds to a pipeline. */
export const jobCountReplies = countReads.length + 1;

/** Queues on `commands` the reads of one queue's job counts; jobCountsFromReplies reads their replies. */
export function queueJobCountReads(commands: ChainableCommander, prefix: string, queue: string): void {
  commands.hexists(queueOwnKey(prefix, queue, 'meta'), 'paused');
  for (const [store, kind] of countReads) {
    const key = queueOwnKey(prefix, queue, store);
    if (kind === 'list') commands.llen(key);
    else commands.zcard(key);
  }
}

/** The counts from the jobCountReplies replies queueJobCountReads asked for, in order. */
export function jobCountsFromReplies(replies: readonly unknown[]): JobCounts {
  const [paused, wait, pausedList, prioritized, delayed, active, completed, failed, waitingChildren] =
    replies.map(Number) as number[];
  return {
    waiting: paused ? 0 : wait!,
    prioritized: prioritized!,
    delayed: delayed!,
    active: active!,
    paused: pausedList! + (paused ? wait! : 0),
    completed: completed!,
    failed: failed!,
    'waiting-children': waitingChildren!,
  };
}

/** One queue's job counts, read in one MULTI (the paused flag and the lists agree). */
export async function readJobCounts(redis: Redis, prefix: string, queue: string): Promise<JobCounts> {
  const transaction = redis.multi();
  queueJobCountReads(transaction, prefix, queue);
  const replies = await transaction.exec();
  if (!replies) throw new Error(`reading the job counts of queue ${queue} was aborted`);
  return jobCountsFromReplies(
    replies.map(([error, value]) => {
      if (error) throw error;
      return value;
    }),
  );
}
