// The exporter resumes from its persisted position: a restart neither recounts nor counts an
// event twice, a replayed batch is harmless, and drift from an operation that emits no events
// (BullMQ's drain) is found by reconciliation and recounted.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  defineTask,
  exporterStateKey,
  LifecycleExporter,
  type LifecycleExporterOptions,
  QueueRecount,
  TaskRegistry,
} from '@jobbers/core';
import { Queue } from 'bullmq';
import { clusterSamples, metricValue } from '../../../test/support/metrics.js';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';

const task = 'demo.job';
const registry = new TaskRegistry([defineTask({ name: task, queue: 'q', params: {}, run: () => null })]);
const fixture = useRedisServer({ blocking: true });

function exporterFor(prefix: string, extra: Partial<LifecycleExporterOptions> = {}) {
  return new LifecycleExporter({
    connection: fixture.redis,
    prefix,
    queues: ['q'],
    blockMs: 50,
    ...extra,
  }).start();
}

async function created(prefix: string) {
  return metricValue(await clusterSamples(fixture.redis, prefix, registry), 'jobbers_job_transitions_total', {
    task,
    transition: 'created',
  });
}

test('a restarted exporter resumes where it stopped: no recount, nothing counted twice', async () => {
  const prefix = uniquePrefix('resume');
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  const first = exporterFor(prefix);
  await first.waitUntilReady();
  await queue.addBulk(Array.from({ length: 50 }, () => ({ name: task, data: {} })));
  await first.waitUntilCaughtUp();
  await first.stop();
  await queue.addBulk(Array.from({ length: 30 }, () => ({ name: task, data: {} })));
  const second = exporterFor(prefix);
  await second.waitUntilCaughtUp();
  assert.equal(await created(prefix), 80);
  assert.equal(
    await fixture.redis.hget(exporterStateKey(prefix, 'q'), 'recounts'),
    '1',
    'only the first start counted',
  );
  await second.stop();
  await queue.close();
});

test('replaying an already applied stretch of the stream changes no gauge', async () => {
  const prefix = uniquePrefix('replay');
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  const exporter = exporterFor(prefix);
  await exporter.waitUntilReady();
  await queue.addBulk(Array.from({ length: 20 }, () => ({ name: task, data: {} })));
  await exporter.waitUntilCaughtUp();
  await exporter.stop();
  await fixture.redis.hset(exporterStateKey(prefix, 'q'), 'pos', '0-0', 'added', '0');
  const again = exporterFor(prefix);
  await again.waitUntilCaughtUp();
  const samples = await clusterSamples(fixture.redis, prefix, registry);
  assert.equal(metricValue(samples, 'jobbers_jobs_available', { task }), 20);
  await again.stop();
  await queue.close();
});

test('drift from an operation that writes no events is reconciled by a recount', async () => {
  const prefix = uniquePrefix('drift');
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  const exporter = exporterFor(prefix, { reconcileMs: 100 });
  await exporter.waitUntilReady();
  await queue.addBulk(Array.from({ length: 10 }, () => ({ name: task, data: {} })));
  await exporter.waitUntilCaughtUp();
  await queue.drain();
  await waitFor(
    async () =>
      metricValue(await clusterSamples(fixture.redis, prefix, registry), 'jobbers_jobs_available', {
        task,
      }) === 0,
    { what: 'the drained jobs to leave the gauge', timeoutMs: 5000 },
  );
  await exporter.stop();
  await queue.close();
});

test('a commit larger than one Redis call can take is split: 5,000 jobs applied in one batch', async () => {
  const prefix = uniquePrefix('bulk');
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  const first = exporterFor(prefix);
  await first.waitUntilReady();
  await first.stop();
  await queue.addBulk(Array.from({ length: 5000 }, () => ({ name: task, data: {} })));
  const exporter = exporterFor(prefix, { batchSize: 20_000 });
  await exporter.waitUntilCaughtUp();
  const samples = await clusterSamples(fixture.redis, prefix, registry);
  assert.equal(metricValue(samples, 'jobbers_jobs_available', { task }), 5000);
  assert.equal(metricValue(samples, 'jobbers_job_transitions_total', { task, transition: 'created' }), 5000);
  assert.equal(await fixture.redis.hlen(`${prefix}:q:jobbers:idx`), 5000);
  await exporter.stop();
  await queue.close();
});

test('a job the recount sees in two lists (it moved while they were read) is kept in the later one only', async () => {
  const prefix = uniquePrefix('twice');
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  const job = await queue.add(task, {});
  // As if it was activated between the read of wait and the read of active.
  await fixture.redis.lpush(`${prefix}:q:active`, job.id!);
  const leaderKey = `${prefix}:q:jobbers:exporter:leader`;
  await fixture.redis.set(leaderKey, 'this-leader');
  const recount = new QueueRecount(fixture.redis, {
    prefix,
    queue: 'q',
    leaderKey,
    stateKey: exporterStateKey(prefix, 'q'),
    token: 'this-leader',
    leaseMs: 10_000,
  });
  assert.equal(await recount.begin(), 'started');
  for (;;) {
    const chunk = await recount.countChunk();
    assert.notEqual(chunk, 'not-leader');
    if (chunk !== 'not-leader' && chunk.status === 'done') break;
  }
  const rp = recount.bookkeepingPrefix;
  assert.equal(await fixture.redis.zscore(`${rp}avail:${task}`, job.id!), null);
  assert.notEqual(await fixture.redis.zscore(`${rp}running:${task}`, job.id!), null);
  assert.equal(await fixture.redis.hget(`${rp}idx`, job.id!), `a|${task}`);
  await queue.close();
});

test('exporter lag is how long the oldest unapplied event has waited, also before the first event is applied', async () => {
  const prefix = uniquePrefix('lag');
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  const exporter = exporterFor(prefix);
  await exporter.waitUntilReady();
  await exporter.stop();
  await queue.add(task, {});
  await new Promise((resolve) => setTimeout(resolve, 300));
  const lagging = metricValue(
    await clusterSamples(fixture.redis, prefix, registry),
    'jobbers_exporter_lag_seconds',
    {
      queue: 'q',
    },
  );
  assert.ok(lagging >= 0.25 && lagging < 60, `an event waiting about 0.3 s shows as such (${lagging} s)`);
  const again = exporterFor(prefix);
  await again.waitUntilCaughtUp();
  assert.equal(
    metricValue(await clusterSamples(fixture.redis, prefix, registry), 'jobbers_exporter_lag_seconds', {
      queue: 'q',
    }),
    0,
  );
  await again.stop();
  await queue.close();
});

test('a second exporter stands by while the first leads', async () => {
  const prefix = uniquePrefix('lead');
  const a = exporterFor(prefix, { leaseMs: 1000 });
  const b = exporterFor(prefix, { leaseMs: 1000 });
  await waitFor(() => a.leading.length + b.leading.length === 1, { what: 'one leader' });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(a.leading.length + b.leading.length, 1, 'still exactly one leader after a lease period');
  await Promise.all([a.stop(), b.stop()]);
});
