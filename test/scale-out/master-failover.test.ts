// A Redis Cluster master SIGKILLed under load (3 masters + 3 replicas): its replica takes over, every
// acknowledged task completes exactly once, the gauges equal the truth, and the API answers 503
// (never 500), and only while the failover lasts.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRedisConnection, keyPrefix, queueKey, scanAvailableJobs } from '@jobbers/core';
import type { Redis } from 'ioredis';
import { startTestManager, type TestManager } from '../support/manager.js';
import { metricValue, parseExposition } from '../support/metrics.js';
import { bins, repoRoot, startProcess } from '../support/processes.js';
import {
  masterOfSlot,
  onNode,
  type RedisCluster,
  type RedisClusterNode,
  startRedisCluster,
} from '../support/redis-cluster.js';
import { uniquePrefix } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

const clusterTasks = `${repoRoot}test/scale-out/fixtures/cluster-tasks.mjs`;
const queues = ['q0', 'q1', 'q2', 'q3', 'q4', 'q5'];

let cluster: RedisCluster;
let redis: Redis;
const running: { close(): Promise<void> }[] = [];

before(async () => {
  cluster = await startRedisCluster({ replicas: 1, nodeTimeoutMs: 1500 });
  redis = createRedisConnection(cluster.url, { blocking: true });
});

after(async () => {
  for (const item of running.reverse()) await item.close();
  redis?.disconnect();
  await cluster?.stop();
});

/** The node id of a node and, from its view, the id of the replica of each master. */
async function replicaOf(view: RedisClusterNode, masterPort: number): Promise<number> {
  const lines = (await onNode<string>(view, 'CLUSTER', 'NODES')).trim().split('\n');
  const fields = lines.map((line) => line.split(' '));
  const master = fields.find((f) => f[1]!.startsWith(`127.0.0.1:${masterPort}@`))!;
  const replica = fields.find((f) => f[3] === master[0]);
  assert.ok(replica, `no replica of ${masterPort}`);
  return Number(replica[1]!.split('@')[0]!.split(':')[1]);
}

test('a master SIGKILLed under load: its replica takes over, nothing is lost, only 503s', {
  timeout: 180_000,
}, async () => {
  const base = uniquePrefix('failover');
  const prefix = keyPrefix(cluster.url, base);
  const manager: TestManager = await startTestManager({
    redisUrl: cluster.url,
    prefix,
    exporter: true,
    tasks: clusterTasks,
  });
  running.push(manager);
  await manager.exporter!.waitUntilReady(20_000);
  for (let w = 0; w < 2; w++) {
    const worker = startProcess(bins.worker, [], {
      REDIS_URL: cluster.url,
      JOBBERS_PREFIX: base,
      JOBBERS_TASKS: clusterTasks,
      WORKER_METRICS_PORT: '0',
      WORKER_CONCURRENT_TASKS: '10',
      WORKER_LEASE_MS: '3000',
      JOBBERS_METRICS_FLUSH_MS: '200',
    });
    running.push({ close: () => worker.stop() });
    await worker.waitForOutput(/worker started/, 30_000);
  }

  // Load: batches of 12 tasks over the six queues; a batch refused is sent again with the same ids
  // (idempotent), as a client would, so every batch is acknowledged in the end.
  const answers: { at: number; status: number }[] = [];
  const acknowledged: { id: string; queue: string }[] = [];
  let loading = true;
  let lastAnswer = '';
  let batchNo = 0;
  const load = (async () => {
    while (loading) {
      const n = batchNo++;
      const tasks = Array.from({ length: 12 }, (_, i) => ({
        id: `f-${n}-${i}`,
        task: 'scale.sleep',
        queue: queues[i % queues.length]!,
        params: { ms: 5 },
      }));
      for (;;) {
        const response = await manager.request('POST', '/v1/tasks/batch', { tasks });
        answers.push({ at: Date.now(), status: response.status });
        lastAnswer = JSON.stringify(response.body).slice(0, 300);
        // 200: an earlier attempt was applied although its answer was lost.
        if (response.status === 201 || response.status === 200) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      for (const t of tasks) acknowledged.push({ id: t.id, queue: t.queue });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();

  await waitFor(() => acknowledged.length >= 600, { timeoutMs: 30_000, what: '600 tasks submitted' });
  const slot = await onNode<number>(
    cluster.nodes[0]!,
    'CLUSTER',
    'KEYSLOT',
    `${queueKey(prefix, 'q0')}:wait`,
  );
  const victimPort = await masterOfSlot(cluster.nodes[0]!, slot);
  const victim = cluster.nodes.find((n) => n.port === victimPort)!;
  const survivors = cluster.nodes.filter((n) => n !== victim);
  const replicaPort = await replicaOf(survivors[0]!, victimPort);
  const killedAt = Date.now();
  victim.process.kill('SIGKILL');
  await waitFor(
    async () => {
      const promoted = cluster.nodes.find((n) => n.port === replicaPort)!;
      if (!(await onNode<string[]>(promoted, 'ROLE'))[0]?.startsWith('master')) return false;
      const states = await Promise.all(survivors.map((n) => onNode<string>(n, 'CLUSTER', 'INFO')));
      return states.every((s) => /cluster_state:ok/.test(s));
    },
    { timeoutMs: 30_000, intervalMs: 50, what: 'the replica to take over' },
  );
  const failedOverAt = Date.now();
  const submittedAtFailover = acknowledged.length;
  await waitFor(() => acknowledged.length >= submittedAtFailover + 300, {
    timeoutMs: 30_000,
    what: '300 more tasks submitted after the failover',
  }).catch((error) => {
    throw new Error(`${error.message}; last answer ${lastAnswer}; ${manager.logged.slice(-3).join('')}`);
  });
  loading = false;
  await load;

  // Every answer was 201 (200 for a batch sent again) or 503, and the 503s came only between the kill and shortly after the
  // promotion (clients learn the new slot map on their next refresh, within a second or two).
  const refused = answers.filter((a) => a.status !== 201 && a.status !== 200);
  for (const answer of refused) assert.equal(answer.status, 503, JSON.stringify(answer));
  const lastRefusedAt = Math.max(killedAt, ...refused.map((a) => a.at));
  assert.ok(
    refused.every((a) => a.at >= killedAt),
    `503 before the kill: ${refused.filter((a) => a.at < killedAt).length}`,
  );
  const windowMs = lastRefusedAt - killedAt;
  assert.ok(
    lastRefusedAt - failedOverAt < 5000,
    `503s went on ${lastRefusedAt - failedOverAt} ms after promotion`,
  );
  process.stdout.write(
    `# failover: promoted after ${failedOverAt - killedAt} ms; ${refused.length} answers 503 within ${windowMs} ms of the kill; ${acknowledged.length} tasks acknowledged\n`,
  );

  // Every acknowledged task completes, exactly once: one `completed` event per task in its queue.
  const ids = new Set(acknowledged.map((t) => t.id));
  assert.equal(ids.size, acknowledged.length);
  await waitFor(
    async () => {
      let completed = 0;
      for (const queue of queues) completed += await redis.zcard(`${queueKey(prefix, queue)}:completed`);
      return completed >= ids.size;
    },
    { timeoutMs: 90_000, intervalMs: 250, what: `all ${ids.size} acknowledged tasks to complete` },
  ).catch(async (error) => {
    // Where the others are: still queued or running (stuck), or gone (lost).
    const where: Record<string, unknown> = {};
    for (const queue of queues) {
      const qp = queueKey(prefix, queue);
      const completed = new Set(await redis.zrange(`${qp}:completed`, 0, -1));
      const missing = acknowledged.filter((t) => t.queue === queue && !completed.has(t.id));
      const states = await Promise.all(
        missing
          .slice(0, 5)
          .map(async (t) => `${t.id}:${(await manager.request('GET', `/v1/tasks/${t.id}`)).body.state}`),
      );
      where[queue] = {
        missing: missing.length,
        wait: await redis.llen(`${qp}:wait`),
        active: await redis.llen(`${qp}:active`),
        delayed: await redis.zcard(`${qp}:delayed`),
        states,
      };
    }
    throw new Error(`${(error as Error).message}: ${JSON.stringify(where)}`);
  });
  for (const queue of queues) {
    const completed = new Set(await redis.zrange(`${queueKey(prefix, queue)}:completed`, 0, -1));
    const mine = acknowledged.filter((t) => t.queue === queue);
    for (const t of mine) assert.ok(completed.has(t.id), `${t.id} did not complete`);
    assert.equal(completed.size, mine.length, `${queue}: completed ${completed.size} of ${mine.length}`);
    const completions = new Map<string, number>();
    for (const [, fields] of (await redis.xrange(`${queueKey(prefix, queue)}:events`, '-', '+')) as [
      string,
      string[],
    ][]) {
      if (fields[1] !== 'completed') continue;
      const jobId = fields[fields.indexOf('jobId') + 1]!;
      completions.set(jobId, (completions.get(jobId) ?? 0) + 1);
    }
    const twice = [...completions].filter(([, count]) => count > 1);
    assert.deepEqual(twice, [], `${queue}: completed more than once`);
  }

  // The gauges equal the truth once the exporter has caught up (it recounts a queue whose stored
  // position went back with the failover).
  await manager.exporter!.waitUntilCaughtUp(30_000);
  await waitFor(
    async () => {
      const samples = parseExposition(await (await fetch(`${manager.baseUrl}/metrics`)).text());
      for (const queue of queues) {
        const truth = (await scanAvailableJobs(redis, prefix, queue)).length;
        if (metricValue(samples, 'jobbers_jobs_available', { queue }) !== truth) return false;
        if (metricValue(samples, 'jobbers_jobs_running', { queue }) !== 0) return false;
        if (metricValue(samples, 'jobbers_incidents', { queue }) !== 0) return false;
        const completed = await redis.zcard(`${queueKey(prefix, queue)}:completed`);
        if (metricValue(samples, 'jobbers_jobs', { queue, state: 'completed' }) !== completed) return false;
      }
      return true;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: 'the gauges to equal the truth' },
  );
});
