// A recount that takes longer than the leader lease: it keeps the lease, finishes once, is exact,
// and the gauge never reads a false 0 while it runs. A deposed leader's recount writes are refused,
// and the leader that takes over resumes the recount instead of starting over.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  defineTask,
  exporterStateKey,
  jobHashField,
  jobKey,
  LifecycleExporter,
  type LifecycleExporterOptions,
  moveToDelayedRateLimited,
  readAvailableByTask,
  scripts,
  TaskRegistry,
} from '@jobbers/core';
import { Queue, Worker } from 'bullmq';
import { pino } from 'pino';
import { clusterSamples, type Sample } from '../../../test/support/metrics.js';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';

const tasks = ['demo.a', 'demo.b', 'demo.c'];
const registry = new TaskRegistry(
  tasks.map((name) => defineTask({ name, queue: 'q', params: {}, run: () => null })),
);
const fixture = useRedisServer({ blocking: true });
// Long enough that counting takes several leases at the old ~28,000 ids/s; seconds to enqueue.
const backlog = 45_000;
const leaseMs = 1000;

async function enqueueBacklog(prefix: string) {
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  for (let start = 0; start < backlog; start += 5000)
    await queue.addBulk(
      Array.from({ length: 5000 }, (_, i) => ({ name: tasks[(start + i) % tasks.length]!, data: {} })),
    );
  await queue.close();
}

function exporterFor(prefix: string, log: string[], extra: Partial<LifecycleExporterOptions> = {}) {
  const logger = pino({ level: 'info' }, { write: (line: string) => void log.push(line) });
  return new LifecycleExporter({
    connection: fixture.redis,
    prefix,
    queues: ['q'],
    blockMs: 50,
    leaseMs,
    logger,
    ...extra,
  }).start();
}

const available = (samples: Sample[]) =>
  samples.filter((s) => s.name === 'jobbers_jobs_available' && s.labels.queue === 'q');
const recounting = (samples: Sample[]) =>
  samples.find((s) => s.name === 'jobbers_exporter_recounting' && s.labels.queue === 'q')?.value;

/** Polls the exposition until the gauge is exact; every sample on the way must be absent or true. */
async function watchGaugeUntilExact(prefix: string) {
  const perTask = backlog / tasks.length;
  const seen = { recounting: false, falseValues: [] as string[] };
  await waitFor(
    async () => {
      const samples = await clusterSamples(fixture.redis, prefix, registry);
      if (recounting(samples) === 1) seen.recounting = true;
      const gauge = available(samples);
      for (const s of gauge) if (s.value !== perTask) seen.falseValues.push(`${s.labels.task}=${s.value}`);
      // What GET /v1/queues/:queue serves: unknown (no map) until counted, then only the truth.
      const api = await readAvailableByTask(fixture.redis, prefix, 'q');
      if (api.recounting) seen.recounting = true;
      for (const [task, count] of api.available ?? [])
        if (count !== perTask) seen.falseValues.push(`api ${task}=${count}`);
      return gauge.length === tasks.length && gauge.every((s) => s.value === perTask);
    },
    { timeoutMs: 20_000, intervalMs: 5, what: `jobbers_jobs_available = ${perTask} for every task` },
  );
  return seen;
}

test('a recount longer than the lease keeps it, finishes once, is exact and never shows a false 0', async () => {
  const prefix = uniquePrefix('long-recount');
  await enqueueBacklog(prefix);
  const logs: string[] = [];
  // Two exporters, as two managers: the one not counting takes over if the lease lapses.
  const first = exporterFor(prefix, logs);
  const second = exporterFor(prefix, logs);
  try {
    const seen = await watchGaugeUntilExact(prefix);
    assert.deepEqual(seen.falseValues, [], 'the gauge showed only the truth or nothing while counting');
    assert.equal(seen.recounting, true, 'jobbers_exporter_recounting was 1 while it counted');
    assert.equal(await fixture.redis.hget(exporterStateKey(prefix, 'q'), 'recounts'), '1');
    const begun = logs.filter((l) => l.includes('recounting queue state'));
    assert.equal(begun.length, 1, `one recount, never restarted nor taken over:\n${begun.join('')}`);
    const samples = await clusterSamples(fixture.redis, prefix, registry);
    assert.equal(recounting(samples), 0);
  } finally {
    await Promise.all([first.stop(), second.stop()]);
  }
});

test('a takeover mid-recount refuses the deposed leader’s writes and resumes the count', async () => {
  const prefix = uniquePrefix('takeover');
  await enqueueBacklog(prefix);
  const leaderKey = `${prefix}:q:jobbers:exporter:leader`;
  const recounted = `${prefix}:q:jobbers:recount:avail:${tasks[0]}`;
  const logs: string[] = [];
  const first = exporterFor(prefix, logs);
  const others: LifecycleExporter[] = [];
  try {
    await waitFor(async () => (await fixture.redis.zcard(recounted)) > 0, {
      intervalMs: 1,
      what: 'the recount to have counted a first slice',
    });
    // The takeover: the lock passes to another holder while the first leader is still counting.
    await fixture.redis.set(leaderKey, 'usurper', 'PX', 10_000);
    const countedAtTakeover = await fixture.redis.zcard(recounted);
    assert.ok(countedAtTakeover < backlog / tasks.length, 'taken over mid-recount');
    await waitFor(() => first.leading.length === 0, { what: 'the first leader to notice it was deposed' });
    assert.equal(
      await fixture.redis.zcard(recounted),
      countedAtTakeover,
      'nothing written after the takeover',
    );
    // The usurper goes away without finishing: a live exporter takes the lead and resumes.
    await fixture.redis.del(leaderKey);
    others.push(exporterFor(prefix, logs));
    const seen = await watchGaugeUntilExact(prefix);
    assert.deepEqual(seen.falseValues, []);
    assert.equal(await fixture.redis.hget(exporterStateKey(prefix, 'q'), 'recounts'), '1');
    assert.ok(
      logs.some((l) => l.includes('recounting queue state') && l.includes('"resumed":true')),
      'the next leader resumed the recount',
    );
  } finally {
    await Promise.all([first.stop(), ...others.map((e) => e.stop())]);
  }
});

test('available jobs a recount counted without indexing them are found when they are taken or removed', async () => {
  const prefix = uniquePrefix('unindexed');
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  await queue.addBulk(Array.from({ length: 30 }, () => ({ name: tasks[0]!, data: {} })));
  const exporter = exporterFor(prefix, []);
  const worker = new Worker('q', null, { connection: fixture.redis, prefix });
  try {
    await exporter.waitUntilReady();
    assert.equal(
      await fixture.redis.hlen(`${prefix}:q:jobbers:idx`),
      0,
      'available jobs are only in their set',
    );
    for (const job of await queue.getWaiting(0, 4)) await job.remove();
    for (let i = 0; i < 3; i++) {
      const job = await worker.getNextJob('test-token');
      await job!.moveToCompleted('done', 'test-token', false);
    }
    await exporter.waitUntilCaughtUp();
    const samples = await clusterSamples(fixture.redis, prefix, registry);
    const value = (name: string) => samples.find((s) => s.name === name && s.labels.task === tasks[0])?.value;
    assert.equal(value('jobbers_jobs_available'), 22);
    assert.equal(value('jobbers_jobs_running'), 0);
  } finally {
    await worker.close();
    await exporter.stop();
    await queue.close();
  }
});

test('a recount and the live exporter tell rate-limited jobs from jobs delayed by a backoff', async () => {
  const prefix = uniquePrefix('ratelimited');
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  const worker = new Worker('q', null, { connection: fixture.redis, prefix });
  await queue.addBulk(Array.from({ length: 4 }, () => ({ name: tasks[0]!, data: {} })));
  const limited = await worker.getNextJob('t1');
  await moveToDelayedRateLimited(fixture.redis, prefix, limited!, 't1', 60_000);
  const backoff = await worker.getNextJob('t2');
  await backoff!.moveToDelayed(Date.now() + 60_000, 't2');
  let exporter: LifecycleExporter | undefined;
  const gauges = async () => {
    await exporter!.waitUntilCaughtUp();
    const samples = await clusterSamples(fixture.redis, prefix, registry);
    const value = (name: string) => samples.find((s) => s.name === name && s.labels.task === tasks[0])?.value;
    return { rateLimited: value('jobbers_jobs_rate_limited'), available: value('jobbers_jobs_available') };
  };
  try {
    // Its first start counts BullMQ's lists: one rate-limited, one delayed (in neither gauge), two waiting.
    exporter = exporterFor(prefix, []);
    await exporter.waitUntilReady();
    assert.deepEqual(await gauges(), { rateLimited: 1, available: 2 });
    // Live: one more rate-limited from the stream, and a rate-limited job promoted back to wait.
    const third = await worker.getNextJob('t3');
    await moveToDelayedRateLimited(fixture.redis, prefix, third!, 't3', 60_000);
    assert.deepEqual(await gauges(), { rateLimited: 2, available: 1 });
    await limited!.promote();
    assert.deepEqual(await gauges(), { rateLimited: 1, available: 2 });
    // A recount of the same state agrees.
    await exporter.stop();
    await fixture.redis.del(exporterStateKey(prefix, 'q'));
    exporter = exporterFor(prefix, []);
    await exporter.waitUntilReady();
    assert.deepEqual(await gauges(), { rateLimited: 1, available: 2 });
  } finally {
    await worker.close();
    await exporter?.stop();
    await queue.close();
  }
});

test('a rate-limit mark whose move never happened (the worker died in between) counts nothing', async () => {
  const prefix = uniquePrefix('deadmark');
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  const worker = new Worker('q', null, { connection: fixture.redis, prefix });
  await queue.add(tasks[0]!, {});
  const exporter = exporterFor(prefix, []);
  try {
    await exporter.waitUntilReady();
    const job = await worker.getNextJob('t1');
    // The worker marked a time, then died before its move; the job is later delayed by a backoff.
    await scripts.markRateLimited.run(
      fixture.redis,
      [jobKey(prefix, 'q', job!.id!)],
      [jobHashField.rateLimitedUntil, Date.now() + 60_000],
    );
    await job!.moveToDelayed(Date.now() + 30_000, 't1');
    const gauge = async () => {
      await exporter.waitUntilCaughtUp();
      const samples = await clusterSamples(fixture.redis, prefix, registry);
      return samples.find((s) => s.name === 'jobbers_jobs_rate_limited' && s.labels.task === tasks[0])?.value;
    };
    assert.equal(await gauge(), 0, 'the exporter counts an ordinary delay');
    await exporter.stop();
    await fixture.redis.del(exporterStateKey(prefix, 'q'));
    const recounted = exporterFor(prefix, []);
    try {
      await recounted.waitUntilReady();
      await recounted.waitUntilCaughtUp();
      const samples = await clusterSamples(fixture.redis, prefix, registry);
      const value = samples.find(
        (s) => s.name === 'jobbers_jobs_rate_limited' && s.labels.task === tasks[0],
      )?.value;
      assert.equal(value, 0, 'so does a recount');
    } finally {
      await recounted.stop();
    }
  } finally {
    await worker.close();
    await exporter.stop();
    await queue.close();
  }
});

test('a recount scores each available job by when it became available', { timeout: 30_000 }, async () => {
  const prefix = uniquePrefix('since');
  const queue = new Queue('q', { connection: fixture.redis, prefix });
  const [plain, delayed, retried, garbled] = await queue.addBulk(
    Array.from({ length: 4 }, () => ({ name: tasks[0]!, data: {} })),
  );
  // As BullMQ leaves a job promoted from its delay, and one back in wait after a failed attempt.
  await fixture.redis.hset(`${prefix}:q:${delayed!.id}`, 'delay', 5000);
  await fixture.redis.hset(`${prefix}:q:${retried!.id}`, 'finishedOn', retried!.timestamp + 9000);
  // Never written so by BullMQ: counted all the same, scored 0, and the rest of its slice as ever.
  await fixture.redis.hset(`${prefix}:q:${garbled!.id}`, 'timestamp', 'not a number');
  const exporter = exporterFor(prefix, []);
  try {
    await exporter.waitUntilReady();
    const score = async (id: string | undefined) =>
      Number(await fixture.redis.zscore(`${prefix}:q:jobbers:avail:${tasks[0]}`, id!));
    assert.equal(await score(plain!.id), plain!.timestamp, 'added: its timestamp');
    assert.equal(await score(delayed!.id), delayed!.timestamp + 5000, 'delayed: timestamp + delay');
    assert.equal(await score(retried!.id), retried!.timestamp + 9000, 'retried: when it last finished');
    assert.equal(await score(garbled!.id), 0, 'a timestamp that is no number: 0');
    assert.equal(await fixture.redis.zcard(`${prefix}:q:jobbers:avail:${tasks[0]}`), 4);
  } finally {
    await exporter.stop();
    await queue.close();
  }
});
