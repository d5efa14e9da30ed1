// A promoted replica may lack the last writes of its dead master: the exporter's stored position
// (and the bookkeeping committed with it) goes back under a leader that keeps running. The leader
// notices the position behind the one it committed and recounts, so the gauge is exact again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  defineTask,
  exporterStateKey,
  jobbersKey,
  LifecycleExporter,
  queueKey,
  TaskRegistry,
} from '@jobbers/core';
import { Queue } from 'bullmq';
import { clusterSamples, metricValue } from '../../../test/support/metrics.js';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';

const task = 'demo.job';
const registry = new TaskRegistry([defineTask({ name: task, queue: 'q', params: {}, run: () => null })]);
const fixture = useRedisServer({ blocking: true });

test('a stored position that went back under a running leader is recounted', async () => {
  const prefix = uniquePrefix('lost-writes');
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  const exporter = new LifecycleExporter({
    connection: fixture.redis,
    prefix,
    queues: ['q'],
    blockMs: 50,
    reconcileMs: 200,
  }).start();
  await exporter.waitUntilReady();
  await queue.addBulk(Array.from({ length: 20 }, () => ({ name: task, data: {} })));
  await exporter.waitUntilCaughtUp();
  const stateKey = exporterStateKey(prefix, 'q');
  assert.equal(await fixture.redis.hget(stateKey, 'recounts'), '1');

  // What Redis would hold had the last commits been lost: an older position, fewer jobs counted.
  const entries = await fixture.redis.xrange(`${queueKey(prefix, 'q')}:events`, '-', '+');
  const older = entries[Math.floor(entries.length / 2)]![0];
  const avail = jobbersKey(prefix, 'q', `avail:${task}`);
  const counted = await fixture.redis.zrange(avail, 0, 4);
  await fixture.redis
    .multi()
    .hset(stateKey, 'pos', older)
    .zrem(avail, ...counted)
    .exec();
  const available = async () =>
    metricValue(await clusterSamples(fixture.redis, prefix, registry), 'jobbers_jobs_available', { task });
  assert.equal(await available(), 15);

  await waitFor(async () => (await fixture.redis.hget(stateKey, 'recounts')) === '2', {
    timeoutMs: 10_000,
    what: 'the exporter to recount the queue',
  });
  await exporter.waitUntilCaughtUp();
  await waitFor(async () => (await available()) === 20, { timeoutMs: 5000, what: 'an exact gauge again' });
  await exporter.stop();
  await queue.close();
});
