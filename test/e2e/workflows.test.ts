// Workflows over REST with a real manager and worker: a chain runs in order, a fan-out/fan-in hands
// every parent's result to the merging node, a failed node fails the workflow or only its own
// branch as its policy says, a node waiting for its parents is never available, a repeated id
// submits nothing, and bad workflows are refused whole.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseExposition } from '../support/metrics.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import {
  type ManagerProcess,
  startManagerProcess,
  startWorkerProcess,
  type WorkerProcess,
} from '../support/stack.js';
import { waitFor } from '../support/wait.js';

let redis: RedisServer;
let manager: ManagerProcess;
let worker: WorkerProcess;

before(async () => {
  redis = await startRedisServer();
  const env = { REDIS_URL: redis.url, JOBBERS_PREFIX: uniquePrefix('wf') };
  [manager, worker] = await Promise.all([startManagerProcess(env), startWorkerProcess(env)]);
});
after(async () => {
  await Promise.all([worker?.stop(), manager?.stop()]);
  await redis?.stop();
});

async function finished(id: string) {
  return waitFor(
    async () => {
      const reply = await manager.request('GET', `/v1/workflows/${id}`);
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      return reply.body.state === 'running' ? undefined : reply.body;
    },
    { timeoutMs: 30_000, what: `workflow ${id} to finish` },
  );
}

const task = async (id: string) => (await manager.request('GET', `/v1/tasks/${id}`)).body;

test('a chain runs each node after the one before it', async () => {
  const submitted = await manager.request('POST', '/v1/workflows', {
    name: 'chain',
    nodes: [
      { key: 'a', task: 'example.echo', params: { step: 1 } },
      { key: 'b', task: 'example.echo', params: { step: 2 }, dependsOn: ['a'] },
      { key: 'c', task: 'example.echo', params: { step: 3 }, dependsOn: ['b'] },
    ],
  });
  assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
  assert.deepEqual(
    submitted.body.submitted.map((s: { id: string }) => s.id),
    [`${submitted.body.id}.a`],
    'only the node without parents is submitted at first',
  );
  const done = await finished(submitted.body.id);
  assert.equal(done.state, 'completed');
  assert.deepEqual(
    done.history.map((h: { key: string }) => h.key),
    ['a', 'b', 'c'],
  );
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((k) => task(`${submitted.body.id}.${k}`)));
  // A node is submitted when its parent's run has returned, just before the parent is settled.
  assert.ok(
    a.startedAt <= b.createdAt && b.startedAt <= c.createdAt,
    'each node was submitted after its parent ran',
  );
  assert.deepEqual(c.result, { step: 3 });
  assert.deepEqual(done.frontier, []);
  // The last node's step records the workflow's end just before its own task is settled: the view
  // shows every task completed a moment later.
  const settled = await waitFor(
    async () => {
      const view = (await manager.request('GET', `/v1/workflows/${submitted.body.id}`)).body;
      return view.nodes.every((n: { taskState: string }) => n.taskState === 'completed') ? view : undefined;
    },
    { timeoutMs: 10_000, what: "every node's task read back completed" },
  );
  for (const node of settled.nodes) {
    assert.equal(node.attempts, 1);
    assert.ok(node.startedAt <= node.finishedAt, `${node.key}: its times`);
  }
});

test('a fan-out/fan-in hands every parent result to the merging node', async () => {
  const parts = [1, 2, 3, 4, 5];
  const submitted = await manager.request('POST', '/v1/workflows', {
    name: 'sum-of-squares',
    nodes: [
      ...parts.map((n) => ({ key: `square-${n}`, task: 'example.square', params: { n } })),
      { key: 'sum', task: 'example.sum', params: {}, dependsOn: parts.map((n) => `square-${n}`) },
    ],
  });
  assert.equal(submitted.status, 201);
  assert.equal(submitted.body.submitted.length, 5);
  const done = await finished(submitted.body.id);
  assert.equal(done.state, 'completed');
  const sum = await task(`${submitted.body.id}.sum`);
  assert.deepEqual(sum.result, { value: 55, parts: 5 }, JSON.stringify({ sum, done }));
  assert.equal(done.history.at(-1).key, 'sum');
});

test('a fan-out runs a node per params entry and its merge reads each by key', async () => {
  const submitted = await manager.request('POST', '/v1/workflows', {
    name: 'fan-out',
    nodes: [
      {
        key: 'sq',
        task: 'example.square',
        fanOut: { params: [0, 1, 2, 3].map((n) => ({ n })), queues: ['default'] },
      },
      { key: 'sum', task: 'example.sum', params: {}, dependsOn: ['sq'] },
    ],
  });
  assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
  assert.deepEqual(
    submitted.body.submitted.map((s: { id: string }) => s.id.split('.').pop()),
    ['sq-0', 'sq-1', 'sq-2', 'sq-3'],
  );
  const done = await finished(submitted.body.id);
  assert.equal(done.state, 'completed');
  assert.deepEqual((await task(`${submitted.body.id}.sum`)).result, { value: 14, parts: 4 });
  const refused = await manager.request('POST', '/v1/workflows', {
    name: 'fan-out',
    nodes: [{ key: 'sq', task: 'example.square', fanOut: { params: [{ n: 1 }], queues: ['elsewhere'] } }],
  });
  assert.equal(refused.status, 400);
  assert.match(JSON.stringify(refused.body.error.details), /cannot run on queue/);
});

test('a failed node fails the workflow and skips what still waits', async () => {
  const submitted = await manager.request('POST', '/v1/workflows', {
    name: 'fails',
    nodes: [
      { key: 'bad', task: 'example.flaky', params: { failTimes: 10 }, retries: 0 },
      { key: 'after-bad', task: 'example.echo', params: {}, dependsOn: ['bad'] },
      { key: 'slow', task: 'example.sleep', params: { ms: 1 }, delay: 60_000 },
      { key: 'after-slow', task: 'example.echo', params: {}, dependsOn: ['slow'] },
    ],
  });
  const done = await finished(submitted.body.id);
  assert.equal(done.state, 'failed');
  const states = Object.fromEntries(done.nodes.map((n: { key: string; state: string }) => [n.key, n.state]));
  assert.deepEqual(states, {
    bad: 'failed',
    'after-bad': 'skipped',
    slow: 'submitted',
    'after-slow': 'skipped',
  });
  assert.equal((await task(`${submitted.body.id}.bad`)).state, 'failed', 'the failed node is an incident');
  assert.equal((await manager.request('GET', `/v1/tasks/${submitted.body.id}.after-bad`)).status, 404);
  await manager.request('POST', `/v1/tasks/${submitted.body.id}.slow/cancel`);
});

test('with onFailure continue, only the failed branch stops', async () => {
  const submitted = await manager.request('POST', '/v1/workflows', {
    name: 'continues',
    nodes: [
      { key: 'bad', task: 'example.flaky', params: { failTimes: 10 }, retries: 0, onFailure: 'continue' },
      { key: 'after-bad', task: 'example.echo', params: {}, dependsOn: ['bad'] },
      { key: 'good', task: 'example.echo', params: { ok: true } },
      { key: 'after-good', task: 'example.echo', params: {}, dependsOn: ['good'] },
    ],
  });
  const done = await finished(submitted.body.id);
  assert.equal(done.state, 'failed', 'a workflow with a failed node ends failed');
  const states = Object.fromEntries(done.nodes.map((n: { key: string; state: string }) => [n.key, n.state]));
  assert.deepEqual(states, {
    bad: 'failed',
    'after-bad': 'skipped',
    good: 'completed',
    'after-good': 'completed',
  });
});

test('a running workflow is cancelled; a failed one is retried from where it failed', async () => {
  const held = await manager.request('POST', '/v1/workflows', {
    name: 'cancelled',
    nodes: [
      { key: 'root', task: 'example.sleep', params: { ms: 1 }, delay: 60_000 },
      { key: 'child', task: 'example.echo', params: {}, dependsOn: ['root'] },
    ],
  });
  const cancelled = await manager.request('POST', `/v1/workflows/${held.body.id}/cancel`);
  assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
  assert.equal(cancelled.body.state, 'cancelled');
  const states = Object.fromEntries(
    cancelled.body.nodes.map((n: { key: string; state: string }) => [n.key, n.state]),
  );
  assert.deepEqual(states, { root: 'cancelled', child: 'skipped' });
  assert.equal(
    (await manager.request('GET', `/v1/tasks/${held.body.id}.root`)).status,
    404,
    'the delayed task is gone',
  );
  assert.equal((await manager.request('POST', `/v1/workflows/${held.body.id}/cancel`)).status, 409);

  // Fails on its first attempt only: the retry of the workflow retries it, and the rest follows.
  const failing = await manager.request('POST', '/v1/workflows', {
    name: 'retried',
    nodes: [
      { key: 'flaky', task: 'example.flaky', params: { failTimes: 1 }, retries: 0 },
      { key: 'after', task: 'example.echo', params: { after: true }, dependsOn: ['flaky'] },
    ],
  });
  const failed = await finished(failing.body.id);
  assert.equal(failed.state, 'failed');
  assert.equal((await manager.request('POST', `/v1/workflows/${failing.body.id}/retry`)).status, 200);
  const done = await finished(failing.body.id);
  assert.equal(done.state, 'completed');
  assert.deepEqual((await task(`${failing.body.id}.after`)).result, { after: true });
  assert.deepEqual(
    done.history.map((h: { key: string; state: string }) => `${h.key}:${h.state}`),
    ['flaky:failed', 'after:skipped', 'flaky:completed', 'after:completed'],
  );
  assert.equal((await manager.request('POST', `/v1/workflows/${failing.body.id}/retry`)).status, 409);
});

test('nodes waiting for their parents are never available, and the workflow counters move', async () => {
  const submitted = await manager.request('POST', '/v1/workflows', {
    name: 'held',
    nodes: [
      { key: 'root', task: 'example.sleep', params: { ms: 1 }, delay: 60_000 },
      ...[1, 2, 3].map((n) => ({
        key: `child-${n}`,
        task: 'example.square',
        params: { n },
        dependsOn: ['root'],
      })),
    ],
  });
  assert.equal(submitted.status, 201);
  const scrape = async () => parseExposition(await (await fetch(`${manager.baseUrl}/metrics`)).text());
  const value = (samples: Awaited<ReturnType<typeof scrape>>, name: string, labels: Record<string, string>) =>
    samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      ?.value;
  await waitFor(
    async () => {
      const samples = await scrape();
      return (
        value(samples, 'jobbers_jobs', { queue: 'default', state: 'delayed' }) === 1 &&
        value(samples, 'jobbers_workflows_started_total', { workflow: 'held' }) === 1 &&
        // Workers flush their counters every second.
        value(samples, 'jobbers_workflows_finished_total', { workflow: 'chain', state: 'completed' }) === 1 &&
        value(samples, 'jobbers_workflows_finished_total', { workflow: 'fails', state: 'failed' }) === 1 &&
        value(samples, 'jobbers_workflow_duration_seconds_count', { workflow: 'sum-of-squares' }) === 1
      );
    },
    { timeoutMs: 10_000, what: 'the delayed root and the workflow counters' },
  );
  const samples = await scrape();
  assert.equal(value(samples, 'jobbers_jobs_available', { queue: 'default', task: 'example.square' }), 0);
  const view = (await manager.request('GET', `/v1/workflows/${submitted.body.id}`)).body;
  assert.deepEqual(view.frontier, ['root']);
  await manager.request('POST', `/v1/tasks/${submitted.body.id}.root/cancel`);
});

test('a repeated workflow id submits nothing; bad workflows are refused whole', async () => {
  const body = { name: 'once', id: 'wf-once', nodes: [{ key: 'only', task: 'example.echo', params: {} }] };
  const first = await manager.request('POST', '/v1/workflows', body);
  const again = await manager.request('POST', '/v1/workflows', body);
  assert.equal(first.status, 201);
  assert.equal(again.status, 200);
  assert.deepEqual(again.body.submitted, []);

  const byName = await manager.request('GET', '/v1/workflows?name=chain');
  assert.deepEqual(
    byName.body.workflows.map((w: { name: string }) => w.name),
    ['chain'],
  );
  const failedOnes = await manager.request('GET', '/v1/workflows?state=failed&limit=500');
  assert.ok(failedOnes.body.workflows.length >= 2);
  assert.ok(failedOnes.body.workflows.every((w: { state: string }) => w.state === 'failed'));
  const firstPage = await manager.request('GET', '/v1/workflows?limit=2');
  const secondPage = await manager.request(
    'GET',
    `/v1/workflows?limit=2&cursor=${firstPage.body.nextCursor}`,
  );
  assert.equal(secondPage.status, 200);
  const seen = [...firstPage.body.workflows, ...secondPage.body.workflows].map((w: { id: string }) => w.id);
  assert.equal(new Set(seen).size, 4, 'the next page carries on where the first stopped');
  const listed = async () => (await manager.request('GET', '/v1/workflows?limit=500')).body.workflows.length;
  const before = await listed();
  for (const [nodes, problem] of [
    [
      [
        { key: 'a', task: 'example.echo', dependsOn: ['b'] },
        { key: 'b', task: 'example.echo', dependsOn: ['a'] },
      ],
      /cycle: a -> b -> a|cycle: b -> a -> b/,
    ],
    [
      [{ key: 'a', task: 'example.echo', dependsOn: ['missing'] }],
      /depends on "missing", which is not a node/,
    ],
    [
      [
        { key: 'a', task: 'example.echo' },
        { key: 'a', task: 'example.echo' },
      ],
      /appears twice/,
    ],
    [[{ key: 'a', task: 'example.square', params: { n: 'two' } }], /1 of 1 nodes are invalid/],
    [[{ key: 'a', task: 'example.nope' }], /1 of 1 nodes are invalid/],
  ] as const) {
    const reply = await manager.request('POST', '/v1/workflows', { name: 'bad', nodes });
    assert.equal(reply.status, 400, JSON.stringify(reply.body));
    assert.equal(reply.body.error.code, 'INVALID_WORKFLOW');
    assert.match(reply.body.error.message, problem);
  }
  const schema = await manager.request('POST', '/v1/workflows', {
    name: 'bad',
    nodes: [{ key: 'a b', task: 'x' }],
  });
  assert.equal(schema.status, 400);
  // A schedule's run id is a task id, but `<it>.<key>` is none: refused as a workflow id, whole.
  const scheduleRunId = await manager.request('POST', '/v1/workflows', {
    name: 'bad',
    id: 'repeat:nightly:1733580000000',
    nodes: [{ key: 'a', task: 'example.echo' }],
  });
  assert.equal(scheduleRunId.status, 400, JSON.stringify(scheduleRunId.body));
  assert.equal(scheduleRunId.body.error.code, 'INVALID_TASK_ID');
  assert.match(scheduleRunId.body.error.message, /workflow id "repeat:nightly:1733580000000" is invalid/);
  // A node id past 128 characters is refused with the node named.
  const long = await manager.request('POST', '/v1/workflows', {
    name: 'bad',
    id: 'w'.repeat(126),
    nodes: [{ key: 'ab', task: 'example.echo' }],
  });
  assert.equal(long.status, 400, JSON.stringify(long.body));
  assert.equal(long.body.error.code, 'INVALID_WORKFLOW');
  assert.equal(long.body.error.details[0].node, 'ab');
  assert.equal(await listed(), before, 'nothing was stored');
  assert.equal((await manager.request('GET', '/v1/tasks/repeat:nightly:1733580000000.a')).status, 400);
  assert.equal((await manager.request('GET', '/v1/workflows/no-such-workflow')).status, 404);
});
