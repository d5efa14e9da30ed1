// Scale-out on a real three-master Redis Cluster. With a prefix without a hash tag each queue gets a
// slot of its own: six queues spread over the masters, tasks submitted over HTTP run on a worker
// process, and the gauges and counters, read per queue and merged, equal the truth. A hash-tagged
// prefix keeps the single-slot layout of earlier releases working.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  createRedisConnection,
  jobbersKey,
  keyPrefix,
  loadManagerConfig,
  queueKey,
  queueMetricsKey,
  scanAvailableJobs,
} from '@jobbers/core';
import type { Redis } from 'ioredis';
import { startTestManager, type TestManager } from '../support/manager.js';
import { metricValue, parseExposition, type Sample } from '../support/metrics.js';
import { bins, type RunningProcess, repoRoot, startProcess } from '../support/processes.js';
import { masterOfSlot, onNode, type RedisCluster, startRedisCluster } from '../support/redis-cluster.js';
import { uniquePrefix } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

const clusterTasks = `${repoRoot}test/scale-out/fixtures/cluster-tasks.mjs`;
const queues = ['q0', 'q1', 'q2', 'q3', 'q4', 'q5'];

let cluster: RedisCluster;
let redis: Redis;
const running: { close(): Promise<void> }[] = [];

before(async () => {
  cluster = await startRedisCluster();
  redis = createRedisConnection(cluster.url, { blocking: true });
});

after(async () => {
  for (const item of running.reverse()) await item.close();
  redis?.disconnect();
  await cluster?.stop();
});

async function startStack(
  prefix: string,
  tasks: string,
): Promise<{ manager: TestManager; worker: RunningProcess }> {
  const manager = await startTestManager({
    redisUrl: cluster.url,
    prefix: keyPrefix(cluster.url, prefix),
    exporter: true,
    tasks,
  });
  running.push(manager);
  await manager.exporter!.waitUntilReady(20_000);
  const worker = startProcess(bins.worker, [], {
    REDIS_URL: cluster.url,
    JOBBERS_PREFIX: prefix,
    JOBBERS_TASKS: tasks,
    WORKER_METRICS_PORT: '0',
  });
  running.push({ close: () => worker.stop() });
  return { manager, worker };
}

/** Submits in one batch, retrying a 503 (cluster not serving yet) with the same ids: idempotent. */
async function submit(manager: TestManager, tasks: unknown[]): Promise<string[]> {
  let batch = await manager.request('POST', '/v1/tasks/batch', { tasks });
  for (let attempt = 1; batch.status === 503 && attempt < 10; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    batch = await manager.request('POST', '/v1/tasks/batch', { tasks });
  }
  assert.equal(batch.status, 201, `${JSON.stringify(batch.body)}\n${manager.logged.join('')}`);
  return batch.body.tasks.map((t: { id: string }) => t.id);
}

async function scrape(manager: TestManager): Promise<Sample[]> {
  const response = await fetch(`${manager.baseUrl}/metrics`);
  assert.equal(response.status, 200);
  return parseExposition(await response.text());
}

async function waitUntilCompleted(manager: TestManager, ids: string[], timeoutMs = 60_000) {
  let done = 0;
  await waitFor(
    async () => {
      // Tasks complete in about submission order: resume from the first one not seen completed.
      while (
        done < ids.length &&
        (await manager.request('GET', `/v1/tasks/${ids[done]}`)).body.state === 'completed'
      )
        done++;
      return done === ids.length;
    },
    { timeoutMs, intervalMs: 200, what: `every task to complete (${done} of ${ids.length})` },
  );
}

test('on a cluster URL a prefix without a hash tag gives each queue a slot of its own', () => {
  const base = { JOBBERS_TASKS: 'x', REDIS_URL: cluster.url };
  assert.equal(loadManagerConfig({ ...base, JOBBERS_PREFIX: 'jobbers' }).prefix, 'jobbers{}');
  assert.equal(loadManagerConfig({ ...base, JOBBERS_PREFIX: '{jobbers}' }).prefix, '{jobbers}');
  assert.equal(loadManagerConfig({ JOBBERS_TASKS: 'x', JOBBERS_PREFIX: 'jobbers' }).prefix, 'jobbers');
  assert.throws(() => loadManagerConfig({ ...base, JOBBERS_PREFIX: 'jobbers{}' }), /empty hash tag/);
});

test('six queues spread over the masters; gauges equal the truth and /metrics merges every queue', {
  timeout: 120_000,
}, async () => {
  const base = uniquePrefix('spread');
  const prefix = keyPrefix(cluster.url, base);
  const manager = await startTestManager({
    redisUrl: cluster.url,
    prefix,
    exporter: true,
    tasks: clusterTasks,
  });
  running.push(manager);
  await manager.exporter!.waitUntilReady(20_000);

  // 6 queues x (40 echo + 20 sleep), submitted in mixed batches before any worker runs.
  const tasks = queues.flatMap((queue, q) => [
    ...Array.from({ length: 40 }, (_, i) => ({
      id: `e-${q}-${i}`,
      task: 'scale.echo',
      queue,
      params: { q, i },
    })),
    ...Array.from({ length: 20 }, (_, i) => ({
      id: `s-${q}-${i}`,
      task: 'scale.sleep',
      queue,
      params: { ms: 2 },
    })),
  ]);
  const ids: string[] = [];
  for (let i = 0; i < tasks.length; i += 90) ids.push(...(await submit(manager, tasks.slice(i, i + 90))));
  assert.equal(ids.length, 360);

  // Every key of one queue (BullMQ's, the exporter's, its metric hashes) is in one slot; the
  // queues' slots are served by at least two masters, and hold the keys.
  const masters = new Set<number>();
  for (const queue of queues) {
    const related = [
      `${queueKey(prefix, queue)}:wait`,
      `${queueKey(prefix, queue)}:events`,
      `${queueKey(prefix, queue)}:e-0-0`,
      jobbersKey(prefix, queue, 'exporter'),
      jobbersKey(prefix, queue, 'avail:scale.echo'),
      queueMetricsKey(prefix, queue, 'jobbers_job_transitions_total'),
    ];
    const slots = await Promise.all(
      related.map((key) => onNode<number>(cluster.nodes[0]!, 'CLUSTER', 'KEYSLOT', key)),
    );
    assert.equal(new Set(slots).size, 1, `${queue}: ${related.join(', ')} -> ${slots.join(', ')}`);
    const port = await masterOfSlot(cluster.nodes[0]!, slots[0]!);
    masters.add(port);
    const master = cluster.nodes.find((n) => n.port === port)!;
    assert.ok((await onNode<number>(master, 'CLUSTER', 'COUNTKEYSINSLOT', slots[0]!)) > 0);
  }
  assert.ok(masters.size >= 2, `queues on ${masters.size} master(s)`);

  // Available per (queue, task) while nothing runs: the exporter's gauge against the jobs in Redis.
  await manager.exporter!.waitUntilCaughtUp(20_000);
  const waiting = await scrape(manager);
  for (const queue of queues) {
    const truth = new Map<string, number>();
    for (const job of await scanAvailableJobs(redis, prefix, queue))
      truth.set(job.task, (truth.get(job.task) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(truth), { 'scale.echo': 40, 'scale.sleep': 20 });
    for (const [task, count] of truth)
      assert.equal(
        metricValue(waiting, 'jobbers_jobs_available', { queue, task }),
        count,
        `${queue} ${task}`,
      );
    assert.equal(metricValue(waiting, 'jobbers_jobs', { queue, state: 'waiting' }), 60);
  }

  const worker = startProcess(bins.worker, [], {
    REDIS_URL: cluster.url,
    JOBBERS_PREFIX: base,
    JOBBERS_TASKS: clusterTasks,
    WORKER_METRICS_PORT: '0',
    WORKER_CONCURRENT_TASKS: '20',
  });
  running.push({ close: () => worker.stop() });
  await worker.waitForOutput(/worker started/, 30_000);
  await waitUntilCompleted(manager, ids);
  const echoed = await manager.request('GET', '/v1/tasks/e-3-7');
  assert.deepEqual(echoed.body.result, { q: 3, i: 7 });
  assert.equal(echoed.body.queue, 'q3');

  await manager.exporter!.waitUntilCaughtUp(20_000);
  await waitFor(
    async () =>
      metricValue(await scrape(manager), 'jobbers_tasks_processed_total', { status: 'completed' }) === 360,
    { timeoutMs: 10_000, what: 'the worker to flush its outcome metrics' },
  );
  const samples = await scrape(manager);
  for (const queue of queues) {
    for (const [task, count] of [
      ['scale.echo', 40],
      ['scale.sleep', 20],
    ] as const) {
      const labels = { queue, task };
      assert.equal(metricValue(samples, 'jobbers_jobs_available', labels), 0, `${queue} ${task}`);
      assert.equal(metricValue(samples, 'jobbers_jobs_running', labels), 0);
      assert.equal(
        metricValue(samples, 'jobbers_job_transitions_total', { ...labels, transition: 'created' }),
        count,
      );
      assert.equal(
        metricValue(samples, 'jobbers_job_transitions_total', { ...labels, transition: 'completed' }),
        count,
      );
      assert.equal(
        metricValue(samples, 'jobbers_tasks_processed_total', { ...labels, status: 'completed' }),
        count,
      );
      assert.equal(metricValue(samples, 'jobbers_tasks_selected_total', labels), count);
    }
    assert.equal(metricValue(samples, 'jobbers_jobs', { queue, state: 'completed' }), 60);
  }
  // Resubmitting a known id finds it in its own queue's slot and enqueues nothing.
  const again = await manager.request('POST', '/v1/tasks', {
    id: 'e-4-1',
    task: 'scale.echo',
    queue: 'q4',
    params: {},
  });
  assert.equal(again.status, 200);
  assert.equal(again.body.queue, 'q4');
});

test('a hash-tagged prefix keeps every key in one slot and still runs end to end', {
  timeout: 60_000,
}, async () => {
  const prefix = `{${uniquePrefix('legacy')}}`;
  const { manager, worker } = await startStack(prefix, '@jobbers/examples');
  await worker.waitForOutput(/worker started/, 30_000);
  const tasks = [
    ...Array.from({ length: 50 }, (_, i) => ({ id: `echo-${i}`, task: 'example.echo', params: { i } })),
    ...Array.from({ length: 10 }, (_, i) => ({
      id: `flaky-${i}`,
      task: 'example.flaky',
      params: { failTimes: 1 },
    })),
  ];
  const ids = await submit(manager, tasks);
  await waitUntilCompleted(manager, ids, 30_000);
  const slots = await Promise.all(
    [
      `${queueKey(prefix, 'default')}:wait`,
      queueMetricsKey(prefix, 'default', 'jobbers_job_transitions_total'),
    ].map((key) => onNode<number>(cluster.nodes[0]!, 'CLUSTER', 'KEYSLOT', key)),
  );
  assert.equal(slots[0], slots[1]);
  await manager.exporter!.waitUntilCaughtUp();
  await waitFor(
    async () =>
      metricValue(await scrape(manager), 'jobbers_tasks_processed_total', {
        queue: 'default',
        status: 'completed',
      }) === 60,
    { timeoutMs: 5000, what: 'the worker to flush its outcome metrics' },
  );
  const samples = await scrape(manager);
  assert.equal(metricValue(samples, 'jobbers_jobs_available', { queue: 'default' }), 0);
  assert.equal(
    metricValue(samples, 'jobbers_job_transitions_total', { queue: 'default', transition: 'created' }),
    60,
  );
  assert.equal(
    metricValue(samples, 'jobbers_job_transitions_total', {
      task: 'example.flaky',
      transition: 'failed-with-backoff',
    }),
    10,
  );
});
