// Removes jobs through BullMQ's own removeJob script, one job per call, so BullMQ emits the
// `removed` event the lifecycle exporter turns into the `removed` transition.
import { bullmqConnection, queueRemoveJob, scripts } from '@jobbers/core';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobSource } from './sources.js';

/**
 * removed: this call removed the job. active: the job is locked by a worker (BullMQ refuses).
 * gone: the job no longer existed (someone else removed it first). kept: BullMQ refused for another
 * reason (the job belongs to a job scheduler).
 */
export type RemovalOutcome = 'removed' | 'active' | 'gone' | 'kept';

/**
 * BullMQ's removeJob answers 1 even for a job that no longer exists, so two cleaners racing for the
 * same job would both count it. Running EXISTS and the script in one MULTI makes the count exact:
 * the job existed and the script removed it, atomically. Up to `inFlight` calls are pipelined.
 */
export async function removeJobs(
  queue: Queue,
  ids: readonly string[],
  inFlight = ids.length,
): Promise<RemovalOutcome[]> {
  const outcomes: RemovalOutcome[] = [];
  if (ids.length === 0) return outcomes;
  const client = await bullmqConnection(queue);
  const removeOne = async (id: string): Promise<RemovalOutcome> => {
    const transaction = client.multi();
    transaction.exists(queue.toKey(id));
    // One job per call (never its children), whatever flows a queue may hold.
    queueRemoveJob(queue, transaction, id);
    const replies = await transaction.exec();
    if (!replies) throw new Error(`removing job ${id} was aborted`);
    const [[existsError, exists], [removeError, code]] = replies as [
      [Error | null, number],
      [Error | null, number],
    ];
    if (existsError) throw existsError;
    if (removeError) throw removeError;
    if (exists !== 1) return 'gone';
    if (code === 1) return 'removed';
    if (code === 0) return 'active';
    return 'kept';
  };
  const step = Math.max(1, inFlight);
  for (let start = 0; start < ids.length; start += step) {
    outcomes.push(...(await Promise.all(ids.slice(start, start + step).map(removeOne))));
  }
  return outcomes;
}

/**
 * For ids read from a source whose job hash has since vanished: removes the dangling id from the
 * source (no job, no event) unless a job of that id exists again. Returns whether each id left the
 * source (false: a job of that id exists again and is left alone).
 */
export async function dropDanglingIds(
  redis: Redis,
  source: JobSource,
  jobKeyOf: (id: string) => string,
  ids: readonly string[],
  inFlight = ids.length,
): Promise<boolean[]> {
  const drop = (id: string) =>
    scripts.dropDanglingId.run(redis, [jobKeyOf(id), source.key], [id, source.kind]);
  const left: boolean[] = [];
  const step = Math.max(1, inFlight);
  for (let start = 0; start < ids.length; start += step) {
    const batch = ids.slice(start, start + step);
    const replies = await Promise.all(batch.map(drop));
    left.push(...replies.map((reply) => reply !== -1));
  }
  return left;
}
