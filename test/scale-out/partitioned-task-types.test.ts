// Partitioned task types on a real three-master Redis Cluster: `scale.ordered` (4 partitions by
// customerId) keeps each customer's tasks in one partition, activated in submission order;
// `scale.spread` (3 partitions, round-robin) spreads evenly; one worker role drains every partition
// and the metrics keep the queue's own name.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  createRedisConnection,
  jobKey,
  keyPrefix,
  loadTasks,
  partitionOfValue,
  partitionQueueName,
  queueKey,
  renderClusterMetrics,
} from '@jobbers/core';
import type { Redis } from 'ioredis';
import { startTestManager, type TestManager } from '../support/manager.js';
import { metricValue, parseExposition, type Sample } from '../support/metrics.js';
import { bins, repoRoot, startProcess } from '../support/processes.js';
import { masterOfSlot, onNode, type RedisCluster, startRedisCluster } from '../support/redis-cluster.js';
import { uniquePrefix } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

const clusterTasks = `${repoRoot}test/scale-out/fixtures/cluster-tasks.mjs`;
const customers = Array.from({ length: 20 }, (_, i) => `c${i}`);
const ordersPerCustomer = 15;

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

async function scrape(manager: TestManager): Promise<Sample[]> {
  const response = await fetch(`${manager.baseUrl}/metrics`);
  assert.equal(response.status, 200);
  return parseExposition(await response.text());
}

async function submitBatch(manager: TestManager, tasks: unknown[]): Promise<void> {
  let batch = await manager.request('POST', '/v1/tasks/batch', { tasks });
  for (let attempt = 1; batch.status === 503 && attempt < 10; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    batch = await manager.request('POST', '/v1/tasks/batch', { tasks });
  }
  assert.equal(batch.status, 201, `${JSON.stringify(batch.body)}\n${manager.logged.join('')}`);
  for (const result of batch.body.tasks) assert.ok(!String(result.queue).includes('~'), result.queue);
}

/** The job ids of the `active` events of one queue's stream, in stream order. */
async function activations(prefix: string, queue: string): Promise<string[]> {
  const entries = (await redis.xrange(`${queueKey(prefix, queue)}:events`, '-', '+')) as [string, string[]][];
  const ids: string[] = [];
  for (const [, fields] of entries) {
    const event = new Map<string, string>();
    for (let i = 0; i < fields.length; i += 2) event.set(fields[i]!, fields[i + 1]!);
    if (event.get('event') === 'active') ids.push(event.get('jobId')!);
  }
  return ids;
}

test('a task definition checks its partitions', async () => {
  const registry = await loadTasks(clusterTasks);
  assert.deepEqual(registry.storageQueues('orders'), ['orders~0', 'orders~1', 'orders~2', 'orders~3']);
  assert.equal(registry.queueOf('orders~2'), 'orders');
  assert.ok(!registry.queues.includes('orders~0'));
});

test('partitioned task types keep per-key order, drain every partition and keep the queue label', {
  timeout: 120_000,
}, async () => {
  const base = uniquePrefix('parts');
  const prefix = keyPrefix(cluster.url, base);
  const manager = await startTestManager({
    redisUrl: cluster.url,
    prefix,
    exporter: true,
    tasks: clusterTasks,
    roles: ['shop'],
  });
  running.push(manager);
  await manager.exporter!.waitUntilReady(20_000);

  // Orders go in one batch per sequence number, so each customer's orders are submitted in order.
  for (let seq = 0; seq < ordersPerCustomer; seq++) {
    await submitBatch(
      manager,
      customers.map((customerId) => ({
        id: `o-${customerId}-${seq}`,
        task: 'scale.ordered',
        params: { customerId, seq },
      })),
    );
  }
  await submitBatch(
    manager,
    Array.from({ length: 30 }, (_, i) => ({ id: `r-${i}`, task: 'scale.spread', params: { i } })),
  );

  // Each customer's orders are all in the partition its id hashes to; round-robin fills evenly.
  for (const customerId of customers) {
    const partition = partitionQueueName('orders', partitionOfValue(customerId, 4));
    for (let seq = 0; seq < ordersPerCustomer; seq++)
      assert.equal(await redis.exists(jobKey(prefix, partition, `o-${customerId}-${seq}`)), 1);
  }
  for (let p = 0; p < 3; p++) assert.equal(await redis.llen(`${queueKey(prefix, `spread~${p}`)}:wait`), 10);
  // The partitions are slots of their own, spread over the masters.
  const masters = new Set<number>();
  for (let p = 0; p < 4; p++) {
    const slot = await onNode<number>(
      cluster.nodes[0]!,
      'CLUSTER',
      'KEYSLOT',
      `${queueKey(prefix, `orders~${p}`)}:wait`,
    );
    masters.add(await masterOfSlot(cluster.nodes[0]!, slot));
  }
  assert.ok(masters.size >= 2, `4 partitions on ${masters.size} master(s)`);

  await manager.exporter!.waitUntilCaughtUp(20_000);
  const waiting = await scrape(manager);
  assert.equal(
    metricValue(waiting, 'jobbers_jobs_available', { queue: 'orders', task: 'scale.ordered' }),
    300,
  );
  assert.equal(metricValue(waiting, 'jobbers_jobs_available', { queue: 'spread', task: 'scale.spread' }), 30);
  assert.equal(metricValue(waiting, 'jobbers_jobs', { queue: 'orders', state: 'waiting' }), 300);
  // Asked for, the job gauges carry the partition: one series per partition, summing to the queue's.
  const registry = await loadTasks(clusterTasks);
  const byPartition = parseExposition(
    await renderClusterMetrics({ redis, prefix, registry, partitionLabel: true }),
  );
  for (let p = 0; p < 4; p++) {
    const truth = await redis.llen(`${queueKey(prefix, `orders~${p}`)}:wait`);
    const labels = { queue: 'orders', task: 'scale.ordered', partition: String(p) };
    assert.equal(metricValue(byPartition, 'jobbers_jobs_available', labels), truth);
    assert.equal(
      metricValue(byPartition, 'jobbers_jobs', { queue: 'orders', state: 'waiting', partition: String(p) }),
      truth,
    );
  }
  assert.equal(metricValue(byPartition, 'jobbers_jobs_available', { queue: 'orders' }), 300);
  assert.ok(!waiting.some((s) => 'partition' in s.labels), 'a partition label without asking');
  const summary = await manager.request('GET', '/v1/queues/orders');
  assert.equal(summary.body.counts.waiting, 300);
  assert.equal(summary.body.available['scale.ordered'], 300);

  const worker = startProcess(bins.worker, [], {
    REDIS_URL: cluster.url,
    JOBBERS_PREFIX: base,
    JOBBERS_TASKS: clusterTasks,
    JOBBERS_ROLES: 'shop=orders,spread',
    WORKER_ROLE: 'shop',
    WORKER_METRICS_PORT: '0',
    WORKER_CONCURRENT_TASKS: '8',
    WORKER_QUEUE_CAPACITY: 'orders=3',
  });
  running.push({ close: () => worker.stop() });
  await worker.waitForOutput(/worker started/, 30_000);
  assert.match(worker.output(), /"queueCapacity":\{"orders":3,"spread":8\}/);
  await waitFor(
    async () => {
      const counts = await Promise.all(
        ['orders', 'spread'].map(async (q) => (await manager.request('GET', `/v1/queues/${q}`)).body.counts),
      );
      return counts[0].completed === 300 && counts[1].completed === 30;
    },
    { timeoutMs: 60_000, intervalMs: 200, what: 'every partition to drain' },
  );
  const view = await manager.request('GET', '/v1/tasks/o-c3-4');
  assert.equal(view.body.queue, 'orders');
  assert.deepEqual(view.body.result, { customerId: 'c3', seq: 4 });

  // Within its partition, each customer's orders were activated in the order they were submitted.
  for (let p = 0; p < 4; p++) {
    const lastSeq = new Map<string, number>();
    const seen = new Set<string>();
    for (const id of await activations(prefix, `orders~${p}`)) {
      if (seen.has(id)) continue;
      seen.add(id);
      const [, customerId, seq] = /^o-(c\d+)-(\d+)$/.exec(id)!;
      assert.equal(partitionOfValue(customerId!, 4), p);
      assert.ok(Number(seq) > (lastSeq.get(customerId!) ?? -1), `${id} activated after a later order`);
      lastSeq.set(customerId!, Number(seq));
    }
  }

  await manager.exporter!.waitUntilCaughtUp(20_000);
  await waitFor(
    async () =>
      metricValue(await scrape(manager), 'jobbers_tasks_processed_total', { status: 'completed' }) === 330,
    { timeoutMs: 10_000, what: 'the worker to flush its outcome metrics' },
  );
  const samples = await scrape(manager);
  assert.ok(!samples.some((s) => s.labels.queue?.includes('~')), 'a partition leaked into a queue label');
  for (const [queue, task, count] of [
    ['orders', 'scale.ordered', 300],
    ['spread', 'scale.spread', 30],
  ] as const) {
    const labels = { queue, task };
    assert.equal(metricValue(samples, 'jobbers_jobs_available', labels), 0);
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
    assert.equal(metricValue(samples, 'jobbers_tasks_selected_total', { ...labels, role: 'shop' }), count);
    assert.equal(metricValue(samples, 'jobbers_jobs', { queue, state: 'completed' }), count);
  }
});
