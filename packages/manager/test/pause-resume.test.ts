// POST /v1/queues/:queue/pause and /resume: a paused queue lets running tasks finish, keeps new tasks
// waiting (counted as paused; no worker takes them) and runs them once resumed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterMetric, taskInState, useManagerWithWorker } from './support/tasks.js';

const stack = useManagerWithWorker('pause');

test('pause lets the running task finish and holds new ones; resume runs them', async () => {
  const running = await stack.manager.request('POST', '/v1/tasks', {
    task: 'example.sleep',
    params: { ms: 500 },
  });
  await taskInState(stack.manager, running.body.id, ['active']);

  const paused = await stack.manager.request('POST', '/v1/queues/default/pause');
  assert.equal(paused.status, 200, JSON.stringify(paused.body));
  assert.equal(paused.body.name, 'default');
  assert.equal(paused.body.paused, true);
  assert.equal((await stack.manager.request('GET', '/v1/queues/default')).body.paused, true);
  assert.equal(
    (await stack.manager.request('POST', '/v1/queues/default/pause')).status,
    200,
    'pausing twice is fine',
  );

  const held = await stack.manager.request('POST', '/v1/tasks', {
    task: 'example.echo',
    params: { held: true },
  });
  assert.equal(held.status, 201);
  const finished = await taskInState(stack.manager, running.body.id, ['completed', 'failed']);
  assert.equal(finished.state, 'completed', 'the task running when the queue paused finished');

  assert.equal((await stack.manager.request('GET', `/v1/tasks/${held.body.id}`)).body.state, 'waiting');
  const queue = await stack.manager.request('GET', '/v1/queues/default');
  assert.equal(queue.body.counts.paused, 1, 'the new task waits, counted as paused');
  assert.equal(queue.body.counts.waiting, 0);
  assert.equal(queue.body.available['example.echo'], 1, 'a task in a paused queue still counts as available');
  assert.equal(
    await clusterMetric(stack.manager, stack.prefix, 'jobbers_jobs_available', { task: 'example.echo' }),
    1,
  );
  const listed = await stack.manager.request('GET', '/v1/tasks?state=waiting');
  assert.deepEqual(
    listed.body.tasks.map((t: { id: string }) => t.id),
    [held.body.id],
  );

  const resumed = await stack.manager.request('POST', '/v1/queues/default/resume');
  assert.equal(resumed.status, 200);
  assert.equal(resumed.body.paused, false);
  const done = await taskInState(stack.manager, held.body.id, ['completed']);
  assert.deepEqual(done.result, { held: true });
  assert.equal(
    (await stack.manager.request('POST', '/v1/queues/default/resume')).status,
    200,
    'resuming twice is fine',
  );
  assert.equal(
    await clusterMetric(stack.manager, stack.prefix, 'jobbers_jobs_available', { task: 'example.echo' }),
    0,
  );
});

test('an unknown queue is a 404 for pause and resume', async () => {
  for (const action of ['pause', 'resume']) {
    const res = await stack.manager.request('POST', `/v1/queues/nope/${action}`);
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'QUEUE_NOT_FOUND');
  }
});
