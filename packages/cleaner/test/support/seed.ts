// Jobs in chosen states and submission times, for cleaner tests.
import { jobKey, queueKey } from '@jobbers/core';
import { type JobsOptions, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { waitFor } from '../../../../test/support/wait.js';

export type SeedState = 'completed' | 'failed' | 'waiting' | 'prioritized' | 'delayed';

export interface SeedJob {
  id: string;
  queue: string;
  task: string;
  state: SeedState;
  /** How long ago the job was submitted (its BullMQ `timestamp`). */
  ageMs: number;
}

const hourMs = 3_600_000;

/**
 * Creates the jobs through BullMQ itself: finished ones are run by a real Worker (completed, or failed
 * with no retries left), then the pending ones are added. Call once per queue: the worker would take
 * pending jobs already there.
 */
export async function seedJobs(redisUrl: string, prefix: string, jobs: SeedJob[]): Promise<void> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const byQueue = new Map<string, SeedJob[]>();
  for (const job of jobs) byQueue.set(job.queue, [...(byQueue.get(job.queue) ?? []), job]);
  try {
    for (const [name, queueJobs] of byQueue) {
      const queue = new Queue(name, { connection, prefix, skipVersionCheck: true });
      const finished = queueJobs.filter((j) => j.state === 'completed' || j.state === 'failed');
      await queue.addBulk(finished.map((j) => bulkEntry(j)));
      if (finished.length > 0) await runToFinish(connection, prefix, queue, finished.length);
      await queue.addBulk(queueJobs.filter((j) => !finished.includes(j)).map((j) => bulkEntry(j)));
      await queue.close();
    }
  } finally {
    connection.disconnect();
  }
}

function bulkEntry(job: SeedJob) {
  const timestamp = Date.now() - job.ageMs;
  const opts: JobsOptions = {
    jobId: job.id,
    timestamp,
    attempts: 1,
    removeOnComplete: false,
    removeOnFail: false,
  };
  if (job.state === 'delayed') opts.delay = job.ageMs + hourMs;
  if (job.state === 'prioritized') opts.priority = 5;
  return { name: job.task, data: { params: {}, outcome: job.state }, opts };
}

async function runToFinish(connection: Redis, prefix: string, queue: Queue, count: number): Promise<void> {
  const workerConnection = connection.duplicate();
  const worker = new Worker(
    queue.name,
    async (job) => {
      if (job.data.outcome === 'failed') throw new Error('seeded failure');
      return { ok: true };
    },
    { connection: workerConnection, prefix, concurrency: 50, skipVersionCheck: true },
  );
  worker.on('error', () => {});
  try {
    await waitFor(
      async () => {
        const counts = await queue.getJobCounts('completed', 'failed');
        return counts.completed! + counts.failed! >= count;
      },
      { timeoutMs: 20_000, what: `${count} seeded jobs to finish in ${queue.name}` },
    );
  } finally {
    await worker.close();
    workerConnection.disconnect();
  }
}

/**
 * Completed jobs written straight into BullMQ's format (the job hash and the completed sorted set),
 * pipelined: fast setup for big queues. The cleaner removes them with BullMQ's script as usual.
 */
export async function writeCompletedJobs(
  redis: Redis,
  prefix: string,
  queue: string,
  options: { count: number; task: string; ageMs: number; idPrefix?: string },
): Promise<string[]> {
  const base = queueKey(prefix, queue);
  await redis.hset(`${base}:meta`, 'opts.maxLenEvents', 10000);
  const ids: string[] = [];
  const chunk = 5000;
  const finishedOn = Date.now() - options.ageMs + 1000;
  for (let start = 0; start < options.count; start += chunk) {
    const pipeline = redis.pipeline();
    const members: (string | number)[] = [];
    for (let i = start; i < Math.min(options.count, start + chunk); i++) {
      const id = `${options.idPrefix ?? 'job'}-${String(i).padStart(7, '0')}`;
      ids.push(id);
      pipeline.hset(jobKey(prefix, queue, id), {
        name: options.task,
        data: '{"params":{}}',
        opts: '{"attempts":1,"removeOnComplete":false,"removeOnFail":false}',
        timestamp: finishedOn - 1000,
        delay: 0,
        priority: 0,
        processedOn: finishedOn - 10,
        finishedOn,
        returnvalue: 'null',
        atm: 1,
        ats: 1,
      });
      members.push(finishedOn, id);
    }
    pipeline.zadd(`${base}:completed`, ...members);
    await pipeline.exec();
  }
  return ids;
}

/** Ids of the seeded jobs whose job hash still exists. */
export async function existingIds(redis: Redis, prefix: string, jobs: SeedJob[]): Promise<string[]> {
  const pipeline = redis.pipeline();
  for (const job of jobs) pipeline.exists(jobKey(prefix, job.queue, job.id));
  const replies = (await pipeline.exec()) ?? [];
  return jobs.filter((_, i) => replies[i]?.[1] === 1).map((j) => j.id);
}

/** jobId -> `prev` of every `removed` event in the queue's event stream. */
export async function removedEvents(
  redis: Redis,
  prefix: string,
  queue: string,
): Promise<Map<string, string[]>> {
  const entries = await redis.xrange(`${queueKey(prefix, queue)}:events`, '-', '+');
  const removed = new Map<string, string[]>();
  for (const [, fields] of entries) {
    const event: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) event[fields[i]!] = fields[i + 1]!;
    if (event.event !== 'removed') continue;
    removed.set(event.jobId!, [...(removed.get(event.jobId!) ?? []), event.prev!]);
  }
  return removed;
}
