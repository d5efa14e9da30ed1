// Two cleaner runs at once (an overlapping cron schedule) remove each task once, and their counts,
// reported and in jobbers_cleaner_removed_total, add up to exactly what was removed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterMetrics, countAvailableByTask, metricHashKey } from '@jobbers/core';
import { Queue } from 'bullmq';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { runCleanerBin } from './support/cli.js';
import { removedEvents, writeCompletedJobs } from './support/seed.js';

const fixture = useRedisServer();

test('two concurrent runs remove each completed task once and their counts add up to the total', async (t) => {
  const prefix = uniquePrefix('twice');
  const oldCount = 8000;
  const recentCount = 1000;
  await writeCompletedJobs(fixture.redis, prefix, 'q', {
    count: oldCount,
    task: 'bulk.task',
    ageMs: 2 * 86_400_000,
  });
  await writeCompletedJobs(fixture.redis, prefix, 'q', {
    count: recentCount,
    task: 'bulk.task',
    ageMs: 60_000,
    idPrefix: 'recent',
  });
  const args = ['--queue', 'q', '--state', 'completed', '--older-than', '1d', '--json'];
  const target = { redisUrl: fixture.server.url, prefix };
  const [a, b] = await Promise.all([runCleanerBin(target, args), runCleanerBin(target, args)]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const ra = a.report!;
  const rb = b.report!;
  t.diagnostic(
    `run A removed ${ra.removed.total} (lost ${ra.skipped.gone} races), ` +
      `run B removed ${rb.removed.total} (lost ${rb.skipped.gone} races)`,
  );

  assert.equal(ra.removed.total + rb.removed.total, oldCount);
  assert.equal(await fixture.redis.zcard(`${prefix}:q:completed`), recentCount);
  assert.equal((await fixture.redis.keys(`${prefix}:q:job-*`)).length, 0);

  const events = await removedEvents(fixture.redis, prefix, 'q');
  assert.equal(events.size, oldCount, 'one removed event per task');
  assert.ok(
    [...events.values()].every((prevs) => prevs.length === 1 && prevs[0] === 'completed'),
    'no task removed twice',
  );
  assert.equal(
    await fixture.redis.hget(metricHashKey(prefix, clusterMetrics.cleanerRemoved), 'q|bulk.task|completed'),
    String(oldCount),
  );
});

test('two concurrent runs over waiting tasks remove each once; the rest stay available', async (t) => {
  const prefix = uniquePrefix('twice-wait');
  const queue = new Queue('q', { connection: fixture.redis, prefix, skipVersionCheck: true });
  const oldCount = 3000;
  const day = 86_400_000;
  for (let start = 0; start < oldCount; start += 1000) {
    await queue.addBulk(
      Array.from({ length: 1000 }, (_, i) => ({
        name: i % 2 === 0 ? 'bulk.old' : 'bulk.other',
        data: { params: {} },
        opts: { jobId: `w-${start + i}`, timestamp: Date.now() - 2 * day },
      })),
    );
  }
  await queue.close();
  const args = ['--queue', 'q', '--state', 'waiting', '--task', 'bulk.old', '--json'];
  const target = { redisUrl: fixture.server.url, prefix };
  const [a, b] = await Promise.all([runCleanerBin(target, args), runCleanerBin(target, args)]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  t.diagnostic(
    `run A removed ${a.report!.removed.total} (lost ${a.report!.skipped.gone} races), ` +
      `run B removed ${b.report!.removed.total} (lost ${b.report!.skipped.gone} races)`,
  );
  assert.equal(a.report!.removed.total + b.report!.removed.total, oldCount / 2);
  assert.deepEqual(Object.fromEntries(await countAvailableByTask(fixture.redis, prefix, 'q')), {
    'bulk.other': 1500,
  });
  const events = await removedEvents(fixture.redis, prefix, 'q');
  assert.equal(events.size, oldCount / 2);
  assert.ok([...events.values()].every((prevs) => prevs.length === 1 && prevs[0] === 'wait'));
});
