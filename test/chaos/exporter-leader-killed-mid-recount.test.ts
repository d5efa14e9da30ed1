// Fault matrix, item 4: the manager that leads the lifecycle exporter is SIGKILLed in the middle of
// a recount of a large backlog; another manager takes over, resumes the recount where it stood
// (it does not start over) while a worker drains and tasks keep coming, and once everything is
// quiet jobbers_jobs_available equals the truth read from BullMQ's lists for every task.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  compareStreamIds,
  countAvailableByTask,
  createRedisConnection,
  exporterStateKey,
  loadTasks,
  type SubmitRequest,
  TaskClient,
  type TaskRegistry,
} from '@jobbers/core';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { parseExposition } from '../support/metrics.js';
import { bins, type RunningProcess, startProcess } from '../support/processes.js';
import { freePort, type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

const backlog = 40_000;
const prefix = uniquePrefix('killed-recount');
let server: RedisServer;
let redis: Redis;
let registry: TaskRegistry;
const processes: RunningProcess[] = [];

const params = [
  { name: 'example.echo', params: {} },
  { name: 'example.sleep', params: { ms: 1 } },
  { name: 'example.flaky', params: { failTimes: 1 } },
];

async function startManager(): Promise<{ manager: RunningProcess; port: number }> {
  const port = await freePort();
  const manager = startProcess(bins.manager, [], {
    REDIS_URL: server.url,
    JOBBERS_PREFIX: prefix,
    JOBBERS_TASKS: '@jobbers/examples',
    MANAGER_PORT: String(port),
    JOBBERS_EXPORTER_LEASE_MS: '1000',
  });
  processes.push(manager);
  return { manager, port };
}

before(async () => {
  server = await startRedisServer();
  redis = createRedisConnection(server.url, { blocking: true });
  registry = await loadTasks('@jobbers/examples');
});

after(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  redis?.disconnect();
  await server?.stop();
});

test('the exporter leader SIGKILLed mid-recount: the other manager resumes it and the gauge is exact', async () => {
  const queue = new Queue('default', { connection: redis, prefix });
  for (let start = 0; start < backlog; start += 5000)
    await queue.addBulk(
      Array.from({ length: 5000 }, (_, i) => {
        const { name, params: p } = params[(start + i) % params.length]!;
        return { name, data: { params: p } };
      }),
    );
  const first = await startManager();
  const progressKey = `${prefix}:default:jobbers:recount:progress`;
  await waitFor(async () => (await redis.exists(progressKey)) === 1, {
    intervalMs: 1,
    timeoutMs: 20_000,
    what: 'the first manager to begin recounting',
  });
  // Writes are held while the leader is killed, so it dies with its recount surely unfinished.
  await redis.call('CLIENT', 'PAUSE', '10000', 'WRITE');
  try {
    assert.equal(await redis.exists(progressKey), 1);
    assert.equal(await redis.hget(exporterStateKey(prefix, 'default'), 'pos'), null, 'not swapped in yet');
    first.manager.kill('SIGKILL');
    await first.manager.exited;
  } finally {
    await redis.call('CLIENT', 'UNPAUSE');
  }
  const worker = startProcess(bins.worker, [], {
    REDIS_URL: server.url,
    JOBBERS_PREFIX: prefix,
    JOBBERS_TASKS: '@jobbers/examples',
    WORKER_METRICS_PORT: '0',
    WORKER_CONCURRENT_TASKS: '20',
  });
  processes.push(worker);
  const second = await startManager();
  const client = new TaskClient({ connection: redis, prefix, registry });
  const more: SubmitRequest[] = Array.from({ length: 3000 }, (_, i) =>
    i % 2 ? { task: 'example.echo', params: { i } } : { task: 'example.flaky', params: { failTimes: 1 } },
  );
  for (let i = 0; i < more.length; i += 500) await client.submitBatch(more.slice(i, i + 500));
  await second.manager.waitForOutput(/"msg":"recount done"/, 30_000);
  worker.kill('SIGTERM');
  await worker.exited;
  await waitFor(
    async () => {
      const [last, pos] = await Promise.all([
        redis.xrevrange(`${prefix}:default:events`, '+', '-', 'COUNT', 1),
        redis.hget(exporterStateKey(prefix, 'default'), 'pos'),
      ]);
      return pos !== null && compareStreamIds(pos, last[0]?.[0] ?? '0-0') >= 0;
    },
    { timeoutMs: 20_000, what: 'the exporter to apply every event' },
  );
  const truth = await countAvailableByTask(redis, prefix, 'default');
  assert.ok(
    [...truth.values()].some((n) => n > 0),
    'a backlog is left to compare',
  );
  await waitFor(
    async () => {
      const text = await (await fetch(`http://127.0.0.1:${second.port}/metrics`)).text();
      const gauge = parseExposition(text).filter((s) => s.name === 'jobbers_jobs_available');
      return params.every(({ name }) => {
        const sample = gauge.find((s) => s.labels.task === name);
        return sample?.value === (truth.get(name) ?? 0);
      });
    },
    { timeoutMs: 10_000, what: `jobbers_jobs_available to equal ${JSON.stringify([...truth])}` },
  );
  assert.equal(await redis.hget(exporterStateKey(prefix, 'default'), 'recounts'), '1');
  assert.match(second.manager.output(), /"resumed":true,"msg":"recounting queue state from BullMQ"/);
  await client.close();
  await queue.close();
});
