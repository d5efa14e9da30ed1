// Runs that end early exit non-zero with what they removed so far: SIGTERM (a Kubernetes Job deadline,
// a cron timeout) stops after the batch in progress with its metric counts in Redis in full; losing
// Redis mid-run says so.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterMetrics, metricHashKey } from '@jobbers/core';
import { Redis } from 'ioredis';
import { startRedisServer, uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';
import { startCleanerBin } from './support/cli.js';
import { writeCompletedJobs } from './support/seed.js';

const fixture = useRedisServer();

test('SIGTERM mid-run: exit 1, a partial report, and metrics equal to what was removed', async () => {
  const prefix = uniquePrefix('sigterm');
  const count = 60_000;
  await writeCompletedJobs(fixture.redis, prefix, 'q', { count, task: 'bulk.task', ageMs: 86_400_000 });
  const { process: cleaner, finished } = startCleanerBin({ redisUrl: fixture.server.url, prefix }, [
    '--state',
    'completed',
    '--json',
  ]);
  await waitFor(async () => (await fixture.redis.zcard(`${prefix}:q:completed`)) < count - 2000, {
    what: 'the cleaner to be part way',
    timeoutMs: 30_000, // its start alone took over 10 s with three suites on two cores
  });
  cleaner.kill('SIGTERM');
  const result = await finished;

  assert.equal(result.code, 1, result.stderr);
  const report = result.report!;
  assert.equal(report.interrupted, true);
  const left = await fixture.redis.zcard(`${prefix}:q:completed`);
  assert.ok(left > 0, 'it stopped before the end');
  assert.equal(report.removed.total, count - left);
  assert.equal(
    await fixture.redis.hget(metricHashKey(prefix, clusterMetrics.cleanerRemoved), 'q|bulk.task|completed'),
    String(count - left),
  );
  assert.equal(
    await fixture.redis.hget(metricHashKey(prefix, clusterMetrics.cleanerLastSuccess), ''),
    null,
    'an interrupted run is not a success',
  );
});

test('Redis lost mid-run: exit 1 with a partial report and a message saying Redis was lost', async () => {
  const own = await startRedisServer();
  const ownRedis = new Redis(own.url);
  let stopped = false;
  try {
    const prefix = uniquePrefix('lost');
    const count = 60_000;
    await writeCompletedJobs(ownRedis, prefix, 'q', { count, task: 'bulk.task', ageMs: 86_400_000 });
    const { finished } = startCleanerBin({ redisUrl: own.url, prefix }, ['--state', 'completed', '--json']);
    await waitFor(async () => (await ownRedis.zcard(`${prefix}:q:completed`)) < count - 2000, {
      what: 'the cleaner to be part way',
      timeoutMs: 30_000, // its start alone took over 10 s with three suites on two cores
    });
    ownRedis.disconnect();
    await own.stop();
    stopped = true;
    const result = await finished;
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`lost Redis at ${own.url.replaceAll('.', '\\.')}`));
    assert.ok(result.report!.removed.total >= 2000, `partial report: ${result.report!.removed.total}`);
    assert.ok(result.report!.error?.message);
  } finally {
    ownRedis.disconnect();
    // RedisServer.stop() waits for an exit event that a second call never gets.
    if (!stopped) await own.stop();
  }
});
