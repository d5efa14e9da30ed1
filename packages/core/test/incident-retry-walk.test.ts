// TaskClient.retryIncidents walks the failed set below the last score it passed: incidents that a
// worker fails again while the walk is under way (newer scores) are not retried a second time.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createRedisConnection, defineTask, TaskClient, TaskRegistry } from '@jobbers/core';
import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';

const task = 'demo.fails';
const registry = new TaskRegistry([defineTask({ name: task, queue: 'q', params: {}, run: () => null })]);
let server: RedisServer;
let redis: Redis;
let blocking: Redis;

before(async () => {
  server = await startRedisServer();
  redis = createRedisConnection(server.url);
  blocking = createRedisConnection(server.url, { blocking: true });
});
after(async () => {
  redis.disconnect();
  blocking.disconnect();
  await server.stop();
});

test('1000 incidents failing again while a mass retry walks them are each retried exactly once', async (t) => {
  const prefix = uniquePrefix('walk');
  const client = new TaskClient({ connection: redis, prefix, registry });
  const queue = new Queue('q', { connection: redis, prefix });
  const worker = new Worker('q', null, { connection: blocking, prefix });
  try {
    await queue.addBulk(
      Array.from({ length: 1000 }, () => ({ name: task, data: { params: {} }, opts: { attempts: 1 } })),
    );
    const failNext = async () => {
      const token = randomUUID();
      const job = (await worker.getNextJob(token, { block: false })) as Job | undefined;
      if (job) await job.moveToFailed(new Error('fails every time'), token, false);
      return job !== undefined;
    };
    while (await failNext()) {}

    // A worker that fails every retried incident again at once, while the walk runs.
    let walking = true;
    let failedDuringWalk = 0;
    const failer = (async () => {
      while (walking) if ((await failNext()) && walking) failedDuringWalk++;
    })();
    const summary = await client.retryIncidents({ task, limit: 10_000 });
    walking = false;
    await failer;
    while (await failNext()) {}
    t.diagnostic(`incidents failed again while the walk was under way: ${failedDuringWalk}`);

    assert.deepEqual(summary, { retried: 1000, matched: 1000, more: false });
    assert.ok(failedDuringWalk > 0, 'the walk met incidents that had failed again');
    const failed = await queue.getFailed(0, -1);
    assert.equal(failed.length, 1000);
    assert.ok(
      failed.every((job) => job.attemptsStarted === 2),
      'every task ran exactly once more: none was retried twice',
    );
  } finally {
    await worker.close(true);
    await queue.close();
    await client.close();
  }
});
