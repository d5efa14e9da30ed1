// Removing available (waiting) tasks goes through BullMQ's removal, which writes one `removed` event
// per task into the queue's event stream: the lifecycle exporter turns those into the `removed`
// transition, so jobbers_jobs_available stays equal to what is really available.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countAvailableByTask } from '@jobbers/core';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { runCleanerBin } from './support/cli.js';
import { removedEvents, type SeedJob, type SeedState, seedJobs } from './support/seed.js';

const fixture = useRedisServer();

function many(count: number, task: string, state: SeedState, ageMs: number, tag: string): SeedJob[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${tag}-${i}`,
    queue: 'orders',
    task,
    state,
    ageMs,
  }));
}

test('after removing waiting tasks the available count per task equals the truth, one removed event each', async () => {
  const prefix = uniquePrefix('avail');
  const day = 86_400_000;
  const jobs = [
    ...many(12, 'order.ship', 'waiting', day, 'ship-old'),
    ...many(8, 'order.ship', 'waiting', 60_000, 'ship-new'),
    ...many(4, 'order.ship', 'prioritized', day, 'ship-prio-old'),
    ...many(3, 'order.ship', 'delayed', day, 'ship-delayed-old'),
    ...many(6, 'order.bill', 'waiting', day, 'bill-old'),
  ];
  await seedJobs(fixture.server.url, prefix, jobs);
  assert.deepEqual(Object.fromEntries(await countAvailableByTask(fixture.redis, prefix, 'orders')), {
    'order.ship': 24,
    'order.bill': 6,
  });

  const result = await runCleanerBin({ redisUrl: fixture.server.url, prefix }, [
    '--queue',
    'orders',
    '--state',
    'waiting',
    '--task',
    'order.ship',
    '--older-than',
    '1h',
    '--json',
  ]);
  assert.equal(result.code, 0, result.stderr);

  const removed = jobs.filter((j) => j.task === 'order.ship' && j.ageMs === day && j.state !== 'delayed');
  assert.equal(result.report!.removed.total, removed.length);
  assert.deepEqual(result.report!.removed.byState, { waiting: 16 });

  const truth = new Map<string, number>();
  for (const job of jobs) {
    if (removed.includes(job) || job.state === 'delayed') continue;
    truth.set(job.task, (truth.get(job.task) ?? 0) + 1);
  }
  assert.deepEqual(await countAvailableByTask(fixture.redis, prefix, 'orders'), truth);
  assert.deepEqual(Object.fromEntries(truth), { 'order.ship': 8, 'order.bill': 6 });

  const events = await removedEvents(fixture.redis, prefix, 'orders');
  assert.deepEqual([...events.keys()].sort(), removed.map((j) => j.id).sort());
  for (const job of removed) {
    assert.deepEqual(events.get(job.id), [job.state === 'prioritized' ? 'prioritized' : 'wait'], job.id);
  }
});
