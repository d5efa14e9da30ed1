// Execution timeouts in a real worker: the task's signal aborts, the attempt fails with reason
// `timeout`, retries apply and the last one raises an incident; every overrun counts in
// jobbers_tasks_timed_out_total. A submission may set its own timeout.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type Harness, startHarness } from './support/worker-harness.js';

let h: Harness;

before(async () => {
  h = await startHarness('timeout');
  await h.startWorker();
});
after(async () => {
  await h?.close();
});

test('a task past its timeout fails the attempt with reason timeout, is retried, then becomes an incident', async () => {
  const id = await h.submit({ task: 'test.hang', params: {}, retries: 1 });
  const done = await h.waitForState(id, ['completed', 'failed']);
  assert.equal(done.state, 'failed');
  assert.equal(done.attempts, 2);
  assert.equal(done.error?.reason, 'timeout');
  assert.match(done.error!.message, /300 ms timeout/);
  assert.equal(await h.transitions('test.hang', 'failed-with-retries'), 1);
  assert.equal(await h.transitions('test.hang', 'incident-raised'), 1);
  await h.waitForCounter('jobbers_tasks_timed_out_total', { task: 'test.hang' }, 2);
});

test('a submission sets its own timeout; the worker goes on running other tasks', async () => {
  const startedAt = Date.now();
  const id = await h.submit({ task: 'example.sleep', params: { ms: 60_000 }, timeout: 200, retries: 0 });
  const done = await h.waitForState(id, ['completed', 'failed']);
  assert.equal(done.state, 'failed');
  assert.equal(done.error?.reason, 'timeout');
  assert.ok(Date.now() - startedAt < 10_000);
  await h.waitForCounter('jobbers_tasks_timed_out_total', { task: 'example.sleep' }, 1);
  const next = await h.submit({ task: 'example.echo', params: { after: 'timeout' } });
  assert.equal((await h.waitForState(next, ['completed', 'failed'])).state, 'completed');
});
