// A metrics flush that Redis refuses (OOM) or leaves unanswered (frozen) keeps its increments,
// lands them once Redis accepts writes again, never counts a batch twice, and never silences the
// flushes that follow.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  clusterMetrics,
  createRedisConnection,
  labelField,
  MetricsBuffer,
  metricHashKey,
  metricsFlushHealth,
  waitForRedis,
} from '@jobbers/core';
import type { Redis } from 'ioredis';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';

let server: RedisServer;
let admin: Redis;
let connection: Redis;

before(async () => {
  server = await startRedisServer();
  admin = createRedisConnection(server.url, { blocking: true });
  connection = createRedisConnection(server.url, { commandTimeoutMs: 300 });
  connection.on('error', () => {});
  await waitForRedis(connection, 5000);
});
after(async () => {
  admin.disconnect();
  connection.disconnect();
  await server.stop();
});

const metric = clusterMetrics.tasksProcessed;
const labels = ['default', 'example.echo', 'completed'];

async function processed(prefix: string): Promise<number> {
  return Number((await admin.hget(metricHashKey(prefix, metric), labelField(labels))) ?? 0);
}

async function refuseWrites(refuse: boolean): Promise<void> {
  if (refuse) {
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
  } else {
    await admin.config('SET', 'maxmemory', '0');
  }
}

/** Flushes; a rejection (how a failed flush showed before) counts as a failed flush. */
const flush = (buffer: MetricsBuffer) =>
  buffer.flush().then(
    (written) => written !== false,
    () => false,
  );

test('increments held through refused writes all land once Redis accepts writes again', async () => {
  const prefix = uniquePrefix('flush-oom');
  const buffer = new MetricsBuffer(connection, prefix, { flushMs: 50 });
  for (let i = 0; i < 50; i++) buffer.increment(metric, labels);
  assert.equal(await flush(buffer), true);
  assert.equal(await processed(prefix), 50);

  await refuseWrites(true);
  try {
    for (let i = 0; i < 30; i++) buffer.increment(metric, labels);
    assert.equal(await flush(buffer), false, 'a flush while Redis refuses writes fails');
    for (let i = 0; i < 20; i++) buffer.increment(metric, labels);
    assert.equal(await flush(buffer), false);
  } finally {
    await refuseWrites(false);
  }
  assert.equal(await flush(buffer), true, 'the first flush after the outage writes');
  assert.equal(await flush(buffer), true);
  assert.equal(await processed(prefix), 100);

  for (let i = 0; i < 400; i++) buffer.increment(metric, labels);
  assert.equal(await flush(buffer), true, 'later flushes are not poisoned by the failed ones');
  assert.equal(await processed(prefix), 500);
});

test('a flush that timed out while Redis was frozen is not counted twice when retried', async () => {
  const prefix = uniquePrefix('flush-frozen');
  const buffer = new MetricsBuffer(connection, prefix, { flushMs: 50 });
  for (let i = 0; i < 7; i++) buffer.increment(metric, labels);
  server.process.kill('SIGSTOP');
  let written: boolean;
  try {
    written = await flush(buffer);
  } finally {
    server.process.kill('SIGCONT');
  }
  assert.equal(written, false, 'the flush times out while Redis is frozen');
  // Redis applies the timed-out batch when it wakes up; the retry must not add it again.
  await waitFor(async () => (await processed(prefix)) === 7, { what: 'the frozen batch applied' });
  for (let i = 0; i < 3; i++) buffer.increment(metric, labels);
  assert.equal(await flush(buffer), true);
  assert.equal(await flush(buffer), true);
  assert.equal(await processed(prefix), 10);
});

test('close retries within its deadline and says whether everything was written', async () => {
  const prefix = uniquePrefix('flush-close');
  const buffer = new MetricsBuffer(connection, prefix, { flushMs: 50 }).start();
  buffer.increment(metric, labels, 5);
  await refuseWrites(true);
  let closed: Promise<boolean>;
  try {
    closed = buffer.close(5000);
    await waitFor(() => buffer.isFailing, { what: 'a failed flush' });
  } finally {
    await refuseWrites(false);
  }
  assert.equal(await closed, true);
  assert.equal(await processed(prefix), 5);

  const doomed = new MetricsBuffer(connection, uniquePrefix('flush-gone'), { flushMs: 50 });
  doomed.increment(metric, labels);
  await refuseWrites(true);
  try {
    assert.equal(await doomed.close(200), false, 'close reports that it could not write');
  } finally {
    await refuseWrites(false);
  }
});

test('the buffer holds at most maxPendingFields fields and counts what it drops', async () => {
  const prefix = uniquePrefix('flush-bound');
  const buffer = new MetricsBuffer(connection, prefix, { maxPendingFields: 2 });
  const dropped = metricsFlushHealth.droppedIncrements;
  buffer.increment(metric, ['q', 'a', 'completed']);
  buffer.increment(metric, ['q', 'b', 'completed']);
  buffer.increment(metric, ['q', 'c', 'completed']);
  buffer.increment(metric, ['q', 'a', 'completed'], 4);
  assert.equal(metricsFlushHealth.droppedIncrements - dropped, 1);
  assert.equal(await flush(buffer), true);
  const stored = await admin.hgetall(metricHashKey(prefix, metric));
  assert.deepEqual(stored, { 'q|a|completed': '5', 'q|b|completed': '1' });
});

test('a batch Redis cannot apply in full applies nothing, and lands whole once it can', async () => {
  const prefix = uniquePrefix('flush-partial');
  const buffer = new MetricsBuffer(connection, prefix, { flushMs: 50 });
  const histogram = clusterMetrics.executionTime;
  buffer.observe(histogram, labels, 1.5);
  assert.equal(await flush(buffer), true);
  // A whole-number sum added to a fractional one must not fail as "not an integer".
  buffer.observe(histogram, labels, 2);
  buffer.increment(metric, labels, 3);
  const processedKey = metricHashKey(prefix, metric);
  await admin.set(processedKey, 'not a hash');
  assert.equal(await flush(buffer), false, 'a metric key of the wrong type fails the batch');
  const sumField = `${labelField(labels)}|sum`;
  assert.equal(await admin.hget(metricHashKey(prefix, histogram), sumField), '1.5', 'nothing applied');
  await admin.del(processedKey);
  assert.equal(await flush(buffer), true);
  assert.equal(await admin.hget(metricHashKey(prefix, histogram), sumField), '3.5');
  assert.equal(await processed(prefix), 3);
});

test('a histogram series keeps its fields past the buffer reusing, then dropping, its series names', async () => {
  const prefix = uniquePrefix('flush-series');
  const histogram = clusterMetrics.executionTime;
  const buckets = histogram.buckets!;
  // Its own connection: 30,000 fields in one flush take longer than the others' 300 ms timeout.
  const patient = createRedisConnection(server.url);
  await waitForRedis(patient, 5000);
  const buffer = new MetricsBuffer(patient, prefix, { maxPendingFields: 1_000_000 });
  const first = ['default', 'example.echo', 'completed'];
  buffer.observe(histogram, first, buckets[0]! / 2);
  // More label sets than the buffer keeps names for: the first series' names are built again.
  for (let i = 0; i < 10_050; i++) buffer.observe(histogram, ['default', `task.${i}`, 'completed'], 1);
  buffer.observe(histogram, first, buckets.at(-1)! * 2);
  buffer.increment(clusterMetrics.tasksProcessed, first);
  buffer.increment(clusterMetrics.tasksProcessed, first);
  assert.equal(await flush(buffer), true);
  const read = async (field: string) =>
    Number((await admin.hget(metricHashKey(prefix, histogram), `${labelField(first)}|${field}`)) ?? 0);
  assert.equal(await read('b0'), 1, 'the first observation in the lowest bucket');
  assert.equal(await read(`b${buckets.length}`), 1, 'the second past the last bucket (+Inf)');
  assert.equal(await read('count'), 2);
  assert.ok(Math.abs((await read('sum')) - (buckets[0]! / 2 + buckets.at(-1)! * 2)) < 1e-9);
  assert.equal(
    Number(
      await admin.hget(
        metricHashKey(prefix, histogram),
        `${labelField(['default', 'task.10049', 'completed'])}|count`,
      ),
    ),
    1,
  );
  assert.equal(await processed(prefix), 2);
  await buffer.close();
  patient.disconnect();
});
