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

/** The reads jobCountReads makes, in order, after the paused flag. */
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

/** How many replies the reads of jobCountReads (or queueJobCountReads) give. */
export const jobCountReplies = countReads.length + 1;

/**
 * The reads of one queue's job counts, in order, each with the key that routes it (every one is in
 * the queue's slot): for batches that pipeline several queues per Redis Cluster master.
 */
export function jobCountReads(
  prefix: string,
  queue: string,
): { key: string; add(commands: ChainableCommander): void }[] {
  const meta = queueOwnKey(prefix, queue, 'meta');
  return [
    { key: meta, add: (commands) => commands.hexists(meta, 'paused') },
    ...countReads.map(([store, kind]) => {
      const key = queueOwnKey(prefix, queue, store);
      return {
        key,
        add: (commands: ChainableCommander) => (kind === 'list' ? commands.llen(key) : commands.zcard(key)),
      };
    }),
  ];
}

/** Queues on `commands` the reads of one queue's job counts; jobCountsFromReplies reads their replies. */
export function queueJobCountReads(commands: ChainableCommander, prefix: string, queue: string): void {
  for (const read of jobCountReads(prefix, queue)) read.add(commands);
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
