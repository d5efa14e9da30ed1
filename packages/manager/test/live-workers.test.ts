// GET /v1/workers and a task's attemptsBy: the registry real worker processes keep in Redis, what each
// runs now, which worker ran each attempt, and a worker leaving on a clean exit or after SIGKILL.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../../../test/support/wait.js';
import { startWorker, taskInState, useManagerWithWorker } from './support/tasks.js';

const stack = useManagerWithWorker('workers');

async function workers() {
  const reply = await stack.manager.request('GET', '/v1/workers');
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return reply.body.workers as any[];
}

test('the live worker is listed with the task it runs now and since when', async () => {
  const [worker] = await workers();
  assert.ok(worker, 'one worker listed');
  assert.equal(worker.role, 'default');
  assert.equal(worker.pid, stack.worker.child.pid);
  assert.deepEqual(worker.queues, ['default']);
  assert.equal(worker.concurrency, 10);
  assert.match(worker.id, new RegExp(`^default@.+:${worker.pid}#`));
  assert.ok(Date.parse(worker.lastSeenAt) >= Date.parse(worker.startedAt));

  const sleep = await stack.manager.request('POST', '/v1/tasks', {
    task: 'example.sleep',
    params: { ms: 2500 },
  });
  const running = await waitFor(
    async () => (await workers())[0]?.running.find((r: any) => r.taskId === sleep.body.id),
    { what: 'the worker to show the task it runs' },
  );
  assert.equal(running.task, 'example.sleep');
  assert.equal(running.queue, 'default');
  assert.equal(running.attempt, 1);
  assert.ok(Date.parse(running.startedAt) <= Date.now());
  await taskInState(stack.manager, sleep.body.id, ['completed']);
  await waitFor(async () => (await workers())[0]?.running.length === 0, {
    what: 'the finished task to leave the worker',
  });
});

test("a task's detail names the worker that ran each attempt", async () => {
  const flaky = await stack.manager.request('POST', '/v1/tasks', {
    task: 'example.flaky',
    params: { failTimes: 1 },
  });
  const done = await taskInState(stack.manager, flaky.body.id, ['completed']);
  const [worker] = await workers();
  assert.deepEqual(
    done.attemptsBy.map((a: any) => [a.attempt, a.worker]),
    [
      [1, worker.id],
      [2, worker.id],
    ],
  );
  assert.ok(Date.parse(done.attemptsBy[0].startedAt) <= Date.parse(done.attemptsBy[1].startedAt));
  const listed = await stack.manager.request('GET', `/v1/tasks?task=example.flaky`);
  assert.equal(listed.body.tasks[0].attemptsBy, undefined, 'listings leave it out');
});

test('a worker leaves the list on a clean exit at once, and within its TTL when killed', async () => {
  const second = await startWorker(stack.redis.url, stack.prefix, { WORKER_ROLE: 'default' });
  await waitFor(async () => (await workers()).some((w) => w.pid === second.child.pid), {
    what: 'the second worker to be listed',
  });
  second.kill('SIGKILL');
  await second.exited;
  assert.ok(
    (await workers()).some((w) => w.pid === second.child.pid),
    'a killed worker stays until its TTL',
  );
  await waitFor(async () => !(await workers()).some((w) => w.pid === second.child.pid), {
    timeoutMs: 25_000,
    what: 'the killed worker to drop out',
  });

  const pid = stack.worker.child.pid;
  stack.worker.kill('SIGTERM');
  assert.equal((await stack.worker.exited).code, 0, stack.worker.output());
  assert.ok(!(await workers()).some((w) => w.pid === pid), 'gone as soon as it exited');
});
