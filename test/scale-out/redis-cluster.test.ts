// Scale-out on a real three-master Redis Cluster: with a hash-tagged prefix, tasks submitted over
// HTTP run on a worker process and the lifecycle metrics stay exact.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { loadManagerConfig } from '@jobbers/core';
import { startTestManager, type TestManager } from '../support/manager.js';
import { metricValue, parseExposition } from '../support/metrics.js';
import { bins, type RunningProcess, startProcess } from '../support/processes.js';
import { type RedisCluster, startRedisCluster } from '../support/redis-cluster.js';
import { uniquePrefix } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

let cluster: RedisCluster;
let manager: TestManager;
let worker: RunningProcess;
const prefix = `{${uniquePrefix('cluster')}}`;

before(async () => {
  cluster = await startRedisCluster();
  manager = await startTestManager({ redisUrl: cluster.url, prefix, exporter: true });
  await manager.exporter!.waitUntilReady();
  worker = startProcess(bins.worker, [], {
    REDIS_URL: cluster.url,
    JOBBERS_PREFIX: prefix,
    JOBBERS_TASKS: '@jobbers/examples',
    WORKER_METRICS_PORT: '0',
  });
  await worker.waitForOutput(/worker started/, 30_000);
});

after(async () => {
  await worker?.stop();
  await manager?.close();
  await cluster?.stop();
});

test('a cluster URL needs a hash-tagged prefix', () => {
  assert.throws(
    () => loadManagerConfig({ JOBBERS_TASKS: 'x', REDIS_URL: cluster.url, JOBBERS_PREFIX: 'jobbers' }),
    /needs a hash tag on Redis Cluster/,
  );
  loadManagerConfig({ JOBBERS_TASKS: 'x', REDIS_URL: cluster.url, JOBBERS_PREFIX: '{jobbers}' });
});

test('tasks run end to end on Redis Cluster and the metrics stay exact', { timeout: 60_000 }, async () => {
  // Explicit ids make the submission idempotent, so a 503 (Redis Cluster not serving yet) is retried
  // the way a client would, without enqueueing anything twice.
  const tasks = [
    ...Array.from({ length: 100 }, (_, i) => ({ id: `echo-${i}`, task: 'example.echo', params: { i } })),
    ...Array.from({ length: 10 }, (_, i) => ({
      id: `flaky-${i}`,
      task: 'example.flaky',
      params: { failTimes: 1 },
    })),
  ];
  let batch = await manager.request('POST', '/v1/tasks/batch', { tasks });
  for (let attempt = 1; batch.status === 503 && attempt < 10; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    batch = await manager.request('POST', '/v1/tasks/batch', { tasks });
  }
  assert.equal(batch.status, 201, `${JSON.stringify(batch.body)}\n${manager.logged.join('')}`);
  const ids: string[] = batch.body.tasks.map((t: { id: string }) => t.id);
  await waitFor(
    async () => {
      const states = await Promise.all(
        ids.map(async (id) => (await manager.request('GET', `/v1/tasks/${id}`)).body.state),
      );
      return states.every((s) => s === 'completed');
    },
    { timeoutMs: 30_000, what: 'every task to complete' },
  );
  const echoed = await manager.request('GET', `/v1/tasks/${ids[7]}`);
  assert.deepEqual(echoed.body.result, { i: 7 });
  await manager.exporter!.waitUntilCaughtUp();
  await waitFor(
    async () => {
      const samples = parseExposition(await (await fetch(`${manager.baseUrl}/metrics`)).text());
      return (
        metricValue(samples, 'jobbers_tasks_processed_total', { queue: 'default', status: 'completed' }) ===
        110
      );
    },
    { timeoutMs: 5000, what: 'the workers to flush their outcome metrics' },
  );
  const samples = parseExposition(await (await fetch(`${manager.baseUrl}/metrics`)).text());
  assert.equal(metricValue(samples, 'jobbers_jobs_available', { queue: 'default' }), 0);
  assert.equal(
    metricValue(samples, 'jobbers_job_transitions_total', { queue: 'default', transition: 'created' }),
    110,
  );
  assert.equal(
    metricValue(samples, 'jobbers_job_transitions_total', {
      task: 'example.flaky',
      transition: 'failed-with-backoff',
    }),
    10,
  );
  assert.equal(
    metricValue(samples, 'jobbers_job_transitions_total', { task: 'example.flaky', transition: 'completed' }),
    10,
  );
});
