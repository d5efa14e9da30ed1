// Deduplication over REST with a real worker process and the lifecycle exporter: simple drops a
// submission while one with its key is pending, throttle keeps one per window, debounce keeps the
// last within its window; each answer says what happened, and the gauges stay exact.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { countAvailableByTask, loadTasks, type TaskRegistry } from '@jobbers/core';
import { startTestManager, type TestManager } from '../support/manager.js';
import { clusterSamples, metricValue } from '../support/metrics.js';
import { bins, type RunningProcess, repoRoot, startProcess } from '../support/processes.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

const tasks = `${repoRoot}test/e2e/fixtures/flow-tasks.mjs`;
const prefix = uniquePrefix('dedup');
let redis: RedisServer;
let manager: TestManager;
let worker: RunningProcess;
let registry: TaskRegistry;

before(async () => {
  redis = await startRedisServer();
  registry = await loadTasks(tasks);
  manager = await startTestManager({ redisUrl: redis.url, prefix, tasks, exporter: true });
  worker = startProcess(bins.worker, [], {
    REDIS_URL: redis.url,
    JOBBERS_PREFIX: prefix,
    JOBBERS_TASKS: tasks,
    WORKER_METRICS_PORT: '0',
    WORKER_CONCURRENT_TASKS: '4',
  });
  await worker.waitForOutput(/worker started/, 20_000);
});

after(async () => {
  await worker?.stop();
  await manager?.close();
  await redis?.stop();
});

function submit(body: unknown) {
  return manager.request('POST', '/v1/tasks', body);
}

function inState(id: string, states: string[]): Promise<any> {
  return waitFor(
    async () => {
      const res = await manager.request('GET', `/v1/tasks/${id}`);
      return states.includes(res.body.state) ? res.body : undefined;
    },
    { timeoutMs: 20_000, what: `task ${id} to be ${states.join(' or ')}` },
  );
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  await manager.exporter!.waitUntilCaughtUp();
  return metricValue(await clusterSamples(manager.connection, prefix, registry), name, labels);
}

test('simple: a submission is dropped while a task with its key is pending, and kept after', {
  timeout: 60_000,
}, async () => {
  const first = await submit({ task: 'flow.unique', params: { customerId: 'c1', ms: 1500 } });
  assert.equal(first.status, 201);
  const again = await submit({ task: 'flow.unique', params: { customerId: 'c1', n: 2 } });
  assert.equal(again.status, 200);
  assert.equal(again.body.deduplicated, true);
  assert.equal(again.body.id, first.body.id, 'the answer names the task kept');
  assert.ok(['waiting', 'active'].includes(again.body.state));
  const other = await submit({ task: 'flow.unique', params: { customerId: 'c2' } });
  assert.equal(other.status, 201, 'another key is not affected');
  assert.equal(other.body.deduplicated, undefined);

  // A key given at submission overrides the param's.
  const given = await submit({ task: 'flow.unique', params: { customerId: 'c3' }, dedupKey: 'c1' });
  assert.equal(given.body.id, first.body.id);

  // In a batch: the second of one key is dropped in favour of the first.
  const batch = await manager.request('POST', '/v1/tasks/batch', {
    tasks: [
      { task: 'flow.unique', params: { customerId: 'b1', ms: 500 } },
      { task: 'flow.unique', params: { customerId: 'b1' } },
      { task: 'flow.unique', params: { customerId: 'b2' } },
    ],
  });
  assert.equal(batch.status, 201);
  const [b1, b1again, b2] = batch.body.tasks;
  assert.equal(b1.created, true);
  assert.deepEqual([b1again.created, b1again.deduplicated, b1again.id], [false, true, b1.id]);
  assert.equal(b2.created, true);

  const done = await inState(first.body.id, ['completed']);
  assert.equal(done.result.ms, 1500, 'the kept task ran with its own params');
  const after = await submit({ task: 'flow.unique', params: { customerId: 'c1' } });
  assert.equal(after.status, 201, 'once the kept task finished, the key is free');
  assert.notEqual(after.body.id, first.body.id);
  await inState(after.body.id, ['completed']);
  await inState(b1.id, ['completed']);
  assert.equal((await manager.request('GET', `/v1/tasks/${again.body.id}`)).body.state, 'completed');
});

test('throttle: one task per window from the first; the next is kept only once the window passed', {
  timeout: 60_000,
}, async () => {
  const first = await submit({ task: 'flow.throttled', params: { customerId: 't1' } });
  assert.equal(first.status, 201);
  const dropped = await submit({ task: 'flow.throttled', params: { customerId: 't1' } });
  assert.equal(dropped.body.deduplicated, true);
  assert.equal(dropped.body.id, first.body.id);
  const firstAt = Date.parse((await inState(first.body.id, ['completed'])).createdAt);
  const next = await waitFor(
    async () => {
      const reply = await submit({ task: 'flow.throttled', params: { customerId: 't1' } });
      return reply.status === 201 ? reply.body : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 100, what: 'the throttle window to pass' },
  );
  const nextAt = Date.parse((await inState(next.id, ['completed'])).createdAt);
  assert.ok(nextAt - firstAt >= 3000 - 20, `the next task came ${nextAt - firstAt} ms after the first`);
});

test('debounce: the last submission within the window runs, the replaced are gone and never available', {
  timeout: 60_000,
}, async () => {
  const batch = await manager.request('POST', '/v1/tasks/batch', {
    tasks: [1, 2, 3].map((n) => ({ task: 'flow.debounced', params: { customerId: 'd1', n } })),
  });
  const [one, two, three] = batch.body.tasks;
  for (const t of [one, two, three]) {
    assert.equal(t.created, true);
    assert.equal(t.state, 'delayed');
  }
  assert.equal(
    await metric('jobbers_jobs_available', { queue: 'default', task: 'flow.debounced' }),
    0,
    'a debounced task waiting out its window is not available',
  );
  assert.equal((await manager.request('GET', `/v1/tasks/${one.id}`)).status, 404);
  assert.equal((await manager.request('GET', `/v1/tasks/${two.id}`)).status, 404);
  const ran = await inState(three.id, ['completed']);
  assert.equal(ran.result.n, 3, 'the last one wins');
  assert.equal(
    await metric('jobbers_job_transitions_total', {
      queue: 'default',
      task: 'flow.debounced',
      transition: 'removed',
    }),
    2,
    'each replaced task counts as removed',
  );
  assert.equal(
    await metric('jobbers_job_transitions_total', {
      queue: 'default',
      task: 'flow.debounced',
      transition: 'completed',
    }),
    1,
  );
});

test('bad dedup options are refused and enqueue nothing', { timeout: 30_000 }, async () => {
  const cases = [
    { task: 'example.echo', params: {}, dedup: 'throttle' },
    { task: 'example.echo', params: {}, dedupKey: 'k', dedup: 'throttle' },
    { task: 'flow.debounced', params: { customerId: 'x' }, delay: 100 },
    { task: 'example.echo', params: {}, dedupKey: 'k', dedup: 'sometimes' },
  ];
  for (const body of cases) {
    const reply = await submit(body);
    assert.equal(reply.status, 400, JSON.stringify(body));
  }
  const echo = await submit({
    task: 'example.echo',
    params: {},
    dedupKey: 'k',
    dedup: 'throttle',
    dedupWindow: 60_000,
  });
  assert.equal(echo.status, 201, 'a task without a dedupKey param takes one from the submission');
  assert.equal(
    (await submit({ task: 'example.echo', params: { x: 1 }, dedupKey: 'k' })).body.id,
    echo.body.id,
  );
});

test('the gauges are exact once the deduplicated work is done', { timeout: 30_000 }, async () => {
  await waitFor(
    async () => {
      const counts = await manager.connection.zcard(`${prefix}:default:delayed`);
      const waiting = await manager.connection.llen(`${prefix}:default:wait`);
      const active = await manager.connection.llen(`${prefix}:default:active`);
      return counts + waiting + active === 0;
    },
    { timeoutMs: 20_000, what: 'the queue to drain' },
  );
  const truth = await countAvailableByTask(manager.connection, prefix, 'default');
  for (const task of registry.names) {
    assert.equal(await metric('jobbers_jobs_available', { queue: 'default', task }), truth.get(task) ?? 0);
    assert.equal(await metric('jobbers_jobs_running', { queue: 'default', task }), 0);
  }
});
