// Reads a queue's true state straight from BullMQ's keys, in bounded chunks.
import type { Redis } from 'ioredis';
import { jobHashField } from './bullmq/job-hash.js';
import { jobStateSource } from './bullmq/keys.js';
import { jobKey } from './keys.js';

export interface AvailableJob {
  id: string;
  task: string;
  timestamp: number;
}

const chunkSize = 1000;

/** Ids of every available job (wait, paused and prioritized), read in chunks of chunkSize. */
async function* availableIds(redis: Redis, prefix: string, queue: string): AsyncGenerator<string[]> {
  for (const store of ['wait', 'paused'] as const) {
    const list = jobStateSource(prefix, queue, store).key;
    for (let start = 0; ; start += chunkSize) {
      const ids = await redis.lrange(list, start, start + chunkSize - 1);
      if (ids.length > 0) yield ids;
      if (ids.length < chunkSize) break;
    }
  }
  for (let start = 0; ; start += chunkSize) {
    const ids = await redis.zrange(
      jobStateSource(prefix, queue, 'prioritized').key,
      start,
      start + chunkSize - 1,
    );
    if (ids.length > 0) yield ids;
    if (ids.length < chunkSize) break;
  }
}

/** Every available job with its task type and submission time. */
export async function scanAvailableJobs(
  redis: Redis,
  prefix: string,
  queue: string,
): Promise<AvailableJob[]> {
  const found = new Map<string, AvailableJob>();
  for await (const ids of availableIds(redis, prefix, queue)) {
    const pipeline = redis.pipeline();
    for (const id of ids)
      pipeline.hmget(
        jobKey(prefix, queue, id),
        jobHashField.name,
        jobHashField.timestamp,
        jobHashField.delay,
      );
    const replies = (await pipeline.exec()) ?? [];
    ids.forEach((id, i) => {
      const [name, timestamp, delay] = (replies[i]?.[1] as (string | null)[]) ?? [];
      if (!name) return;
      found.set(id, { id, task: name, timestamp: Number(timestamp ?? 0) + Number(delay ?? 0) });
    });
  }
  return [...found.values()];
}

export async function countAvailableByTask(
  redis: Redis,
  prefix: string,
  queue: string,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const job of await scanAvailableJobs(redis, prefix, queue))
    counts.set(job.task, (counts.get(job.task) ?? 0) + 1);
  return counts;
}
