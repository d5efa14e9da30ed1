// Removes jobs through BullMQ's own removeJob script, one job per call, so BullMQ emits the
// `removed` event the lifecycle exporter turns into the `removed` transition.
import { bullmqConnection, queueRemoveJob } from '@jobbers/core';
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

/** Drops the id from the source only while no job of that id exists: the job was removed by someone else. */
const dropDanglingScript = `
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if ARGV[2] == 'zset' then return redis.call('ZREM', KEYS[2], ARGV[1]) end
return redis.call('LREM', KEYS[2], 1, ARGV[1])
`;

type DanglingCommand = (jobKey: string, sourceKey: string, id: string, kind: string) => Promise<number>;

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
  const commands = redis as unknown as { jobbersDropDangling?: DanglingCommand };
  if (!commands.jobbersDropDangling)
    redis.defineCommand('jobbersDropDangling', { numberOfKeys: 2, lua: dropDanglingScript });
  const drop = commands.jobbersDropDangling!.bind(redis);
  const left: boolean[] = [];
  const step = Math.max(1, inFlight);
  for (let start = 0; start < ids.length; start += step) {
    const batch = ids.slice(start, start + step);
    const replies = await Promise.all(batch.map((id) => drop(jobKeyOf(id), source.key, id, source.kind)));
    left.push(...replies.map((reply) => reply !== -1));
  }
  return left;
}
