// A task a worker is running is never removed, even when it matches every filter, and the worker
// finishes it normally afterwards.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { removeJobs } from '@jobbers/cleaner';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';
import { runCleanerBin } from './support/cli.js';
import { seedJobs, writeCompletedJobs } from './support/seed.js';

const fixture = useRedisServer();

/** A real BullMQ worker holding one job active until release() is called. */
async function holdActive(prefix: string, queueName: string) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const connection = new Redis(fixture.server.url, { maxRetriesPerRequest: null });
  const queue = new Queue(queueName, { connection, prefix, skipVersionCheck: true });
  await queue.add('work.long', { params: {} }, { jobId: 'held', timestamp: Date.now() - 86_400_000 });
  const workerConnection = connection.duplicate();
  const worker = new Worker(
    queueName,
    async () => {
      await released;
      return 'finished after the cleaner ran';
    },
    { connection: workerConnection, prefix, concurrency: 1, skipVersionCheck: true },
  );
  worker.on('error', () => {});
  await waitFor(async () => (await queue.getJobState('held')) === 'active', {
    what: 'the held job to be active',
  });
  return {
    queue,
    release,
    close: async () => {
      await worker.close();
      await queue.close();
      workerConnection.disconnect();
      connection.disconnect();
    },
  };
}

test('an active task matching every filter survives a run over all states; the worker then completes it', async () => {
  const prefix = uniquePrefix('active');
  const held = await holdActive(prefix, 'work');
  try {
    await seedJobs(fixture.server.url, prefix, [
      { id: 'w1', queue: 'work', task: 'work.long', state: 'waiting', ageMs: 86_400_000 },
      { id: 'w2', queue: 'work', task: 'work.long', state: 'waiting', ageMs: 86_400_000 },
      { id: 'd1', queue: 'work', task: 'work.long', state: 'delayed', ageMs: 86_400_000 },
    ]);
    await writeCompletedJobs(fixture.redis, prefix, 'work', {
      count: 5,
      task: 'work.long',
      ageMs: 86_400_000,
    });

    const result = await runCleanerBin({ redisUrl: fixture.server.url, prefix }, [
      '--queue',
      'work',
      '--task',
      'work.long',
      '--state',
      'completed,failed,waiting,delayed',
      '--older-than',
      '1h',
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.report!.removed.total, 8);
    assert.equal(await held.queue.getJobState('held'), 'active');
    assert.equal(
      await fixture.redis.exists(`${prefix}:work:held:lock`),
      1,
      'the worker still holds its lock',
    );

    held.release();
    await waitFor(async () => (await held.queue.getJobState('held')) === 'completed', {
      what: 'the held job to complete',
    });
    const job = await held.queue.getJob('held');
    assert.equal(job?.returnvalue, 'finished after the cleaner ran');
  } finally {
    held.release();
    await held.close();
  }
});

test('removing a job that became active after it was read is refused and not counted', async () => {
  const prefix = uniquePrefix('active');
  const held = await holdActive(prefix, 'work');
  try {
    assert.deepEqual(await removeJobs(held.queue, ['held']), ['active']);
    assert.equal(await held.queue.getJobState('held'), 'active');
    const events = await fixture.redis.xrange(`${prefix}:work:events`, '-', '+');
    assert.ok(!events.some(([, fields]) => fields.includes('removed')), 'no removed event');
  } finally {
    held.release();
    await held.close();
  }
});

test('a job someone else removed first counts as gone, not removed (BullMQ alone would answer 1)', async () => {
  const prefix = uniquePrefix('gone');
  await writeCompletedJobs(fixture.redis, prefix, 'work', { count: 2, task: 'work.long', ageMs: 1000 });
  const queue = new Queue('work', { connection: fixture.redis, prefix, skipVersionCheck: true });
  try {
    assert.equal(await queue.remove('job-0000000'), 1);
    assert.equal(await queue.remove('job-0000000'), 1, 'BullMQ reports 1 for a job that is already gone');
    assert.deepEqual(await removeJobs(queue, ['job-0000000', 'job-0000001', 'never-existed']), [
      'gone',
      'removed',
      'gone',
    ]);
  } finally {
    await queue.close();
  }
});
