// POST /v1/tasks/:id/cancel removes a task that has not started (waiting, prioritized, delayed)
// through BullMQ's removal: GET answers 404 afterwards, the exporter counts `removed` and the
// available gauge stays exact. A task that started or finished is a 409 and is left alone, even when
// the cancel races the worker taking it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { jobbersKey } from '@jobbers/core';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import type { RunningProcess } from '../../../test/support/processes.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';
import { clusterMetric, startWorker, taskInState, transitions } from './support/tasks.js';

let redis: RedisServer;
let manager: TestManager;
let prefix: string;
const echo = 'example.echo';

before(async () => {
  redis = await startRedisServer();
  prefix = uniquePrefix('cancel');
  manager = await startTestManager({ redisUrl: redis.url, prefix, exporter: true });
  await manager.exporter!.waitUntilReady();
});
after(async () => {
  await manager?.close();
  await redis?.stop();
});

async function submit(body: Record<string, unknown>): Promise<string> {
  const res = await manager.request('POST', '/v1/tasks', { task: echo, params: {}, ...body });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id;
}

/** The true number of available echo tasks, read from BullMQ's lists through the API. */
async function trulyAvailable(): Promise<number> {
  const waiting = await manager.request('GET', `/v1/tasks?state=waiting&task=${echo}&limit=500`);
  const prioritized = await manager.request('GET', `/v1/tasks?state=prioritized&task=${echo}&limit=500`);
  return waiting.body.tasks.length + prioritized.body.tasks.length;
}

const available = () => clusterMetric(manager, prefix, 'jobbers_jobs_available', { task: echo });

describe('with no worker running', () => {
  test('a waiting, a prioritized and a delayed task are cancelled, counted as removed, and gone', async () => {
    const keep = await submit({});
    const waiting = await submit({});
    const prioritized = await submit({ priority: 2 });
    const delayed = await submit({ delay: 60_000 });
    assert.equal(await available(), 3);

    for (const [id, state] of [
      [waiting, 'waiting'],
      [prioritized, 'prioritized'],
      [delayed, 'delayed'],
    ] as const) {
      const res = await manager.request('POST', `/v1/tasks/${id}/cancel`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body, { id, task: echo, queue: 'default', cancelled: true, previousState: state });
      const read = await manager.request('GET', `/v1/tasks/${id}`);
      assert.equal(read.status, 404, 'a cancelled task is removed: GET answers 404');
      assert.equal(read.body.error.code, 'TASK_NOT_FOUND');
    }

    assert.equal(await transitions(manager, prefix, echo, 'removed'), 3);
    assert.equal(await available(), 1);
    assert.equal(await trulyAvailable(), 1);
    const kept = await manager.request('GET', `/v1/tasks/${keep}`);
    assert.equal(kept.body.state, 'waiting');
    const queue = await manager.request('GET', '/v1/queues/default');
    assert.equal(queue.body.available[echo], 1);
  });

  test('cancelling clears the yield mark a worker may have left for the task', async () => {
    const id = await submit({});
    const yields = jobbersKey(prefix, 'default', 'yields');
    await manager.connection.hset(yields, id, Date.now());
    const res = await manager.request('POST', `/v1/tasks/${id}/cancel`);
    assert.equal(res.status, 200);
    assert.equal(await manager.connection.hexists(yields, id), 0);
  });

  test('cancelling twice, or an unknown id, is a 404; a malformed id a 400', async () => {
    const id = await submit({});
    assert.equal((await manager.request('POST', `/v1/tasks/${id}/cancel`)).status, 200);
    const again = await manager.request('POST', `/v1/tasks/${id}/cancel`);
    assert.equal(again.status, 404);
    assert.equal(again.body.error.code, 'TASK_NOT_FOUND');
    const unknown = await manager.request('POST', '/v1/tasks/no-such-task/cancel');
    assert.equal(unknown.status, 404);
    const bad = await manager.request('POST', '/v1/tasks/bad%20id/cancel');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_TASK_ID');
  });
});

describe('with a worker running', () => {
  let worker: RunningProcess;
  before(async () => {
    worker = await startWorker(redis.url, prefix, { WORKER_CONCURRENT_TASKS: '10' });
  });
  after(() => worker?.stop());

  test('an active task is a 409 and keeps running to completion', async () => {
    const res = await manager.request('POST', '/v1/tasks', { task: 'example.sleep', params: { ms: 1500 } });
    const id = res.body.id;
    await taskInState(manager, id, ['active']);
    const cancel = await manager.request('POST', `/v1/tasks/${id}/cancel`);
    assert.equal(cancel.status, 409);
    assert.equal(cancel.body.error.code, 'TASK_STATE_CONFLICT');
    assert.deepEqual(cancel.body.error.details, { state: 'active' });
    const done = await taskInState(manager, id, ['completed', 'failed']);
    assert.equal(done.state, 'completed');
    assert.deepEqual(done.result, { sleptMs: 1500 });
  });

  test('a completed or failed task is a 409 and stays as it is', async () => {
    const completed = await submit({ params: { n: 1 } });
    await taskInState(manager, completed, ['completed']);
    const failedRes = await manager.request('POST', '/v1/tasks', {
      task: 'example.flaky',
      params: { failTimes: 1 },
      retries: 0,
    });
    const failed = failedRes.body.id;
    await taskInState(manager, failed, ['failed']);
    for (const [id, state] of [
      [completed, 'completed'],
      [failed, 'failed'],
    ]) {
      const res = await manager.request('POST', `/v1/tasks/${id}/cancel`);
      assert.equal(res.status, 409);
      assert.deepEqual(res.body.error.details, { state });
      assert.equal((await manager.request('GET', `/v1/tasks/${id}`)).body.state, state);
    }
  });

  test('cancels racing the worker: every task is either cancelled and gone or run, never both', async (t) => {
    const sleep = 'example.sleep';
    const removedBefore = await transitions(manager, prefix, sleep, 'removed');
    const completedBefore = await transitions(manager, prefix, sleep, 'completed');
    // 300 tasks of 100 ms on 10 slots take at least 3 s, long enough for the cancels to reach tasks still
    // waiting on a loaded machine: cancels meet tasks still waiting and tasks already taken.
    const batch = await manager.request('POST', '/v1/tasks/batch', {
      tasks: Array.from({ length: 300 }, () => ({ task: sleep, params: { ms: 100 } })),
    });
    const ids: string[] = batch.body.tasks.map((task: { id: string }) => task.id);
    // Newest first: the worker takes the oldest first, so early cancels find tasks still waiting and late
    // ones find tasks the worker already took.
    const answers = await Promise.all(
      ids.map((_, i) => manager.request('POST', `/v1/tasks/${ids[ids.length - 1 - i]}/cancel`)),
    ).then((reversed) => reversed.reverse());
    const cancelled = ids.filter((_, i) => answers[i]!.status === 200);
    const refused = ids.filter((_, i) => answers[i]!.status === 409);
    assert.equal(cancelled.length + refused.length, 300, 'every answer is 200 or 409');
    t.diagnostic(`cancelled ${cancelled.length}, already taken by the worker ${refused.length}`);
    assert.ok(cancelled.length > 0 && refused.length > 0, 'the cancels raced the worker');

    for (const id of refused) {
      const done = await taskInState(manager, id, ['completed']);
      assert.deepEqual(done.result, { sleptMs: 100 });
    }
    for (const id of cancelled) assert.equal((await manager.request('GET', `/v1/tasks/${id}`)).status, 404);
    await waitFor(
      async () =>
        (await transitions(manager, prefix, sleep, 'completed')) === completedBefore + refused.length,
      { what: 'every refused task to be counted completed' },
    );
    assert.equal(await transitions(manager, prefix, sleep, 'removed'), removedBefore + cancelled.length);
    assert.equal(await clusterMetric(manager, prefix, 'jobbers_jobs_available', { task: sleep }), 0);
    assert.equal(await clusterMetric(manager, prefix, 'jobbers_jobs_running', { task: sleep }), 0);
    const queue = await manager.request('GET', '/v1/queues/default');
    assert.equal(queue.body.counts.waiting + queue.body.counts.active + queue.body.counts.prioritized, 0);
  });
});
