// The fields of BullMQ's job hash that Jobbers reads or writes directly, and the one Jobbers adds.
import { Job, type JobJson, type Queue, raw2NextJobData, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { jobKey, queueOwnKey } from './keys.js';

export const jobHashField = {
  name: 'name',
  data: 'data',
  returnvalue: 'returnvalue',
  /** Creation time (ms). */
  timestamp: 'timestamp',
  /** The submit delay (ms) of a delayed job. */
  delay: 'delay',
  processedOn: 'processedOn',
  finishedOn: 'finishedOn',
  /** Attempts started: BullMQ adds one on every move to active. */
  attemptsStarted: 'ats',
  /** Attempts made: BullMQ adds one on every move to completed or failed. */
  attemptsMade: 'atm',
  /** The last progress a task reported (JSON), absent until it reports one. */
  progress: 'progress',
  /** processedBy: the name of the worker that last activated the job (the exporter's role label). */
  processedBy: 'pb',
  /** Jobbers' own field: the time (ms) of the task's last heartbeat. */
  lastHeartbeat: 'jbhb',
  /** Jobbers' own field: `attempt|worker id|started at (ms)` a line, one per attempt (see workers.ts). */
  attemptWorkers: 'jbw',
  /**
   * Jobbers' own field: the times (ms) a rate limit last delayed the job to, space separated, newest
   * last (see rate-limited-move.ts).
   */
  rateLimitedUntil: 'jbrl',
} as const;

/**
 * Adds delta to the job's count of attempts started (a job activated that never ran is taken back:
 * ctx.attempt counts runs).
 */
export async function adjustAttemptsStarted(
  redis: Redis,
  prefix: string,
  queue: string,
  id: string,
  delta: number,
): Promise<void> {
  await redis.hincrby(jobKey(prefix, queue, id), jobHashField.attemptsStarted, delta);
}

/** What a job's hash and the completed set say about how its last attempt ended. */
export interface JobFinish {
  attemptsStarted: number;
  attemptsMade: number;
  finishedOn: number | undefined;
  /** Whether the job is in the queue's completed set. */
  completed: boolean;
}

export async function readJobFinish(
  redis: Redis,
  prefix: string,
  queue: string,
  id: string,
): Promise<JobFinish> {
  const replies = await redis
    .multi()
    .hmget(
      jobKey(prefix, queue, id),
      jobHashField.attemptsStarted,
      jobHashField.attemptsMade,
      jobHashField.finishedOn,
    )
    .zscore(queueOwnKey(prefix, queue, 'completed'), id)
    .exec();
  if (!replies) throw new Error(`reading how job ${id} finished was aborted`);
  for (const [error] of replies) if (error) throw error;
  const [started, made, finishedOn] = replies[0]![1] as (string | null)[];
  const score = replies[1]![1] as string | null;
  return {
    attemptsStarted: Number(started ?? 0),
    attemptsMade: Number(made ?? 0),
    finishedOn: finishedOn ? Number(finishedOn) : undefined,
    completed: score !== null,
  };
}

/**
 * A Job built from its hash as read with HGETALL (no further read). BullMQ decodes a hash (short
 * field names, numbers as strings) only in the reply of a move that fetched the next job, so the
 * hash goes through that decoder, as the flat field list such a reply holds.
 */
export function jobFromHash<T = unknown>(queue: Queue, fields: Record<string, string>, id: string): Job<T> {
  const [json] = raw2NextJobData([Object.entries(fields).flat(), id]) as [JobJson];
  return Job.fromJSON(queue, json, id) as Job<T>;
}

/**
 * Whether a failed attempt ends the job (an incident) rather than leading to a retry: BullMQ's rule,
 * known before the move so what depends on it (a workflow's next step) can be done first.
 */
export function isFinalFailure(job: Job, error: Error): boolean {
  return error instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}
