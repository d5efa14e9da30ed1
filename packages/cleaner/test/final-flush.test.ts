// The cleaner is short-lived: its last metrics flush retries within the run. Redis refusing the
// write for a moment still ends in exit 0 with every removal counted; refusing it for good ends in
// exit 1 and metricsWritten: false in the --json report, the removals themselves done.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterMetrics, metricHashKey } from '@jobbers/core';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';
import { startCleanerBin } from './support/cli.js';
import { writeCompletedJobs } from './support/seed.js';

const fixture = useRedisServer();
const args = ['--queue', 'q', '--state', 'completed', '--json'];

/** A metric key that is not a hash makes every flush fail until it is deleted. */
async function blockMetrics(prefix: string) {
  await fixture.redis.set(metricHashKey(prefix, clusterMetrics.cleanerRemoved), 'blocked');
}

async function removedTotal(prefix: string): Promise<number> {
  const values = await fixture.redis.hvals(metricHashKey(prefix, clusterMetrics.cleanerRemoved));
  return values.reduce((sum, v) => sum + Number(v), 0);
}

test('a final flush refused for a moment is retried: exit 0, every removal counted', async () => {
  const prefix = uniquePrefix('flush-retry');
  await writeCompletedJobs(fixture.redis, prefix, 'q', { count: 40, task: 't', ageMs: 60_000 });
  await blockMetrics(prefix);
  const run = startCleanerBin(
    { redisUrl: fixture.server.url, prefix, env: { JOBBERS_METRICS_FLUSH_MS: '500' } },
    args,
  );
  await waitFor(() => /metrics flush failed/.test(run.process.output()), { what: 'a refused flush' });
  await fixture.redis.del(metricHashKey(prefix, clusterMetrics.cleanerRemoved));
  const result = await run.finished;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.report?.metricsWritten, true);
  assert.equal(result.report?.removed.total, 40);
  assert.equal(await removedTotal(prefix), 40);
  assert.match(result.stderr, /metrics flush recovered/);
});

test('a final flush refused for good: exit 1 and metricsWritten false, the removals done', async () => {
  const prefix = uniquePrefix('flush-lost');
  await writeCompletedJobs(fixture.redis, prefix, 'q', { count: 10, task: 't', ageMs: 60_000 });
  await blockMetrics(prefix);
  const result = await startCleanerBin(
    { redisUrl: fixture.server.url, prefix, env: { JOBBERS_METRICS_FLUSH_MS: '100' } },
    args,
  ).finished;
  assert.equal(result.code, 1, result.stderr);
  assert.equal(result.report?.metricsWritten, false);
  assert.equal(result.report?.removed.total, 10);
  assert.equal(await fixture.redis.zcard(`${prefix}:q:completed`), 0);
  assert.match(result.stderr, /could not write the removal counts to Redis/);
});
