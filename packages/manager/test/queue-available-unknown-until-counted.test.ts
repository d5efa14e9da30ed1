// GET /v1/queues/:queue before the exporter's first count of a queue: the available jobs per task
// are unknown (null), never a false 0, and `recounting` says when a count runs; once counted, the
// numbers are the truth.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LifecycleExporter, readAvailableByTask } from '@jobbers/core';
import { Queue } from 'bullmq';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';

let redis: RedisServer;
let manager: TestManager;
const prefix = uniquePrefix('uncounted');

before(async () => {
  redis = await startRedisServer();
  // The app reads the exporter's bookkeeping, as jobbers-manager does; no exporter runs yet.
  manager = await startTestManager({
    redisUrl: redis.url,
    prefix,
    extra: { availableByTask: (queue) => readAvailableByTask(manager.connection, prefix, queue) },
  });
});
after(async () => {
  await manager?.close();
  await redis?.stop();
});

test('available jobs read null before the first count, then the exact count', async () => {
  // Enqueued while no exporter ran (after an outage, or with its state lost).
  const queue = new Queue('default', { connection: manager.connection, prefix });
  await queue.addBulk(
    Array.from({ length: 5 }, (_, i) => ({ name: 'example.echo', data: { params: { i } } })),
  );
  await queue.close();

  const before = await manager.request('GET', '/v1/queues/default');
  assert.equal(before.status, 200);
  assert.equal(before.body.available['example.echo'], null, 'unknown, not 0, before any count');
  assert.equal(before.body.available['example.sleep'], null);
  assert.equal(before.body.recounting, false);
  assert.equal(before.body.counts.waiting, 5, 'the counts per state come from BullMQ and are known');

  const exporter = new LifecycleExporter({
    connection: manager.connection,
    prefix,
    queues: ['default'],
    blockMs: 50,
  }).start();
  try {
    await exporter.waitUntilCaughtUp();
    const counted = await manager.request('GET', '/v1/queues/default');
    assert.equal(counted.body.available['example.echo'], 5);
    assert.equal(counted.body.available['example.sleep'], 0, 'counted: a true 0');
    assert.equal(counted.body.recounting, false);
    const list = await manager.request('GET', '/v1/queues');
    assert.equal(
      list.body.queues.find((q: { name: string }) => q.name === 'default').available['example.echo'],
      5,
    );
  } finally {
    await exporter.stop();
  }
});
