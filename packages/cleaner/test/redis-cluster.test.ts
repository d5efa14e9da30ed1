// On a Redis Cluster (hash-tagged prefix, so each queue's keys share a slot) the cleaner finds the
// queues on every master and removes through BullMQ as on a single Redis.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  clusterMetrics,
  createRedisConnection,
  keyPrefix,
  metricHashKey,
  queueKey,
  queueMetricHashKey,
  waitForRedis,
} from '@jobbers/core';
import type { Redis } from 'ioredis';
import { type RedisCluster, startRedisCluster } from '../../../test/support/redis-cluster.js';
import { uniquePrefix } from '../../../test/support/redis-server.js';
import { runCleanerBin } from './support/cli.js';
import { writeCompletedJobs } from './support/seed.js';

let cluster: RedisCluster;
let redis: Redis;

before(async () => {
  cluster = await startRedisCluster();
  redis = createRedisConnection(cluster.url);
  await waitForRedis(redis, 10_000);
});

after(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

test('prunes every queue it finds across the cluster, counting in the cluster-wide metric', async () => {
  const prefix = `{${uniquePrefix('cluster')}}`;
  for (const queue of ['alpha', 'beta', 'gamma']) {
    await writeCompletedJobs(redis, prefix, queue, { count: 300, task: 'bulk.old', ageMs: 2 * 86_400_000 });
    await writeCompletedJobs(redis, prefix, queue, {
      count: 50,
      task: 'bulk.new',
      ageMs: 1000,
      idPrefix: 'new',
    });
  }
  const result = await runCleanerBin({ redisUrl: cluster.url, prefix }, [
    '--state',
    'completed',
    '--older-than',
    '1d',
    '--json',
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.report!.queues, ['alpha', 'beta', 'gamma']);
  assert.deepEqual(result.report!.removed.byQueue, { alpha: 300, beta: 300, gamma: 300 });
  for (const queue of ['alpha', 'beta', 'gamma']) {
    assert.equal(await redis.zcard(`${prefix}:${queue}:completed`), 50);
  }
  assert.equal(
    await redis.hget(metricHashKey(prefix, clusterMetrics.cleanerRemoved), 'beta|bulk.old|completed'),
    '300',
  );
});

test('with a slot per queue it finds the queues on their masters and counts per queue', async () => {
  const base = uniquePrefix('spread');
  const prefix = keyPrefix(cluster.url, base);
  for (const queue of ['alpha', 'beta', 'gamma']) {
    await writeCompletedJobs(redis, prefix, queue, { count: 120, task: 'bulk.old', ageMs: 2 * 86_400_000 });
  }
  const result = await runCleanerBin({ redisUrl: cluster.url, prefix: base }, [
    '--state',
    'completed',
    '--older-than',
    '1d',
    '--json',
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.report!.queues, ['alpha', 'beta', 'gamma']);
  assert.deepEqual(result.report!.removed.byQueue, { alpha: 120, beta: 120, gamma: 120 });
  for (const queue of ['alpha', 'beta', 'gamma']) {
    assert.equal(await redis.zcard(`${queueKey(prefix, queue)}:completed`), 0);
    assert.equal(
      await redis.hget(
        queueMetricHashKey(prefix, queue, clusterMetrics.cleanerRemoved),
        `${queue}|bulk.old|completed`,
      ),
      '120',
    );
  }
});
