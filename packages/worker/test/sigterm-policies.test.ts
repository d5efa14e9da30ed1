// SIGTERM applies each running task's shutdown policy, in a real worker process:
// finish runs on (up to the grace), reenqueue gives the job back (yielded, no retry used) and it
// completes on another worker, fail fails the attempt with reason `shutdown` (retries apply).
// The grace running out, or a second SIGTERM, gives back what still runs: nothing is left active.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { type Harness, startHarness } from './support/worker-harness.js';

let h: Harness;

before(async () => {
  h = await startHarness('sigterm');
});
afterEach(() => h.killWorkers());
after(async () => {
  await h?.close();
});

test('finish: the running task completes, the worker takes nothing new and exits 0', async () => {
  const worker = await h.startWorker({ WORKER_SHUTDOWN_GRACE_MS: '10000' });
  const id = await h.submit({ task: 'test.finish', params: { ms: 800 } });
  await h.waitForState(id, ['active']);
  const port = /"metricsPort":(\d+)/.exec(worker.output())![1];
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  assert.match(metrics, /^jobbers_worker_running_tasks\{role="default"\} 1$/m);
  assert.match(metrics, /^jobbers_worker_capacity\{role="default"\} 10$/m);
  worker.kill('SIGTERM');
  await worker.waitForOutput(/letting the task finish/);
  const later = await h.submit({ task: 'example.echo', params: {} });
  assert.equal((await worker.exited).code, 0);
  const task = await h.task(id);
  assert.equal(task.state, 'completed');
  assert.equal(task.attempts, 1);
  assert.equal((await h.task(later)).state, 'waiting', 'a stopping worker takes no new task');
  await h.discard(later);
});

test('reenqueue: example.heartbeat is given back at once (yielded, no retry used) and completes on another worker', async () => {
  const first = await h.startWorker({ WORKER_SHUTDOWN_GRACE_MS: '30000' });
  const yieldedBefore = await h.transitions('example.heartbeat', 'yielded');
  const id = await h.submit({ task: 'example.heartbeat', params: { seconds: 2 }, retries: 0 });
  await h.waitForState(id, ['active']);
  const signalledAt = Date.now();
  first.kill('SIGTERM');
  assert.equal((await first.exited).code, 0);
  assert.ok(Date.now() - signalledAt < 5000, 'the worker did not wait for the grace');
  const given = await h.task(id);
  assert.equal(given.state, 'waiting');
  assert.equal(await h.transitions('example.heartbeat', 'yielded'), yieldedBefore + 1);

  const second = await h.startWorker();
  const done = await h.waitForState(id, ['completed', 'failed']);
  assert.equal(done.state, 'completed', 'with retries: 0 it could only complete if the yield used no retry');
  assert.deepEqual(done.result, { beats: 2 });
  assert.equal(await h.takenBy(id), second.child.pid);
  second.kill('SIGTERM');
  await second.exited;
});

test('fail: the attempt fails now with reason shutdown; with a retry left it runs again elsewhere', async () => {
  const first = await h.startWorker({ WORKER_SHUTDOWN_GRACE_MS: '30000' });
  const retried = await h.submit({ task: 'test.fail', params: { ms: 60_000, laterMs: 10 }, retries: 1 });
  const dead = await h.submit({ task: 'test.fail', params: { ms: 60_000 }, retries: 0 });
  await h.waitForState(retried, ['active']);
  await h.waitForState(dead, ['active']);
  first.kill('SIGTERM');
  assert.equal((await first.exited).code, 0);

  const incident = await h.task(dead);
  assert.equal(incident.state, 'failed');
  assert.equal(incident.error?.reason, 'shutdown');
  assert.equal(await h.transitions('test.fail', 'incident-raised'), 1);
  assert.equal((await h.task(retried)).state, 'waiting');
  assert.equal(await h.transitions('test.fail', 'failed-with-retries'), 1);

  const second = await h.startWorker();
  const done = await h.waitForState(retried, ['completed', 'failed']);
  assert.equal(done.state, 'completed');
  assert.deepEqual(done.result, { pid: second.child.pid, attempt: 2 });
  second.kill('SIGTERM');
  await second.exited;
});

test('finish past the grace: the task is given back so nothing is left active', async () => {
  const worker = await h.startWorker({ WORKER_SHUTDOWN_GRACE_MS: '300' });
  const yieldedBefore = await h.transitions('test.finish', 'yielded');
  const id = await h.submit({ task: 'test.finish', params: { ms: 60_000 } });
  await h.waitForState(id, ['active']);
  worker.kill('SIGTERM');
  assert.equal((await worker.exited).code, 0);
  assert.match(worker.output(), /shutdown grace ran out/);
  assert.equal((await h.task(id)).state, 'waiting');
  assert.equal(await h.transitions('test.finish', 'yielded'), yieldedBefore + 1);
  await h.discard(id);
});

test('a second SIGTERM gives back a finish task at once, without waiting for the grace', async () => {
  const worker = await h.startWorker({ WORKER_SHUTDOWN_GRACE_MS: '60000' });
  const id = await h.submit({ task: 'test.finish', params: { ms: 60_000 } });
  await h.waitForState(id, ['active']);
  worker.kill('SIGTERM');
  await worker.waitForOutput(/letting the task finish/);
  worker.kill('SIGTERM');
  assert.equal((await worker.exited).code, 0);
  assert.match(worker.output(), /second stop signal/);
  assert.equal((await h.task(id)).state, 'waiting');
  assert.equal(await h.client.queue('default').getActiveCount(), 0);
  await h.discard(id);
});
