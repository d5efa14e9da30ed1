// ctx.yield() in a real worker: the task gives its job back unfinished, now or after a delay. The
// exporter counts `yielded`, no retry is used (a task with retries: 0 yields and still completes),
// and ctx.attempt counts each run.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type Harness, startHarness } from './support/worker-harness.js';

let h: Harness;

before(async () => {
  h = await startHarness('yield');
  await h.startWorker();
});
after(async () => {
  await h?.close();
});

test('a task that yields is available again at once and completes on its next run, no retry used', async () => {
  const id = await h.submit({ task: 'test.yield', params: { times: 1 }, retries: 0 });
  const done = await h.waitForState(id, ['completed', 'failed']);
  assert.equal(done.state, 'completed');
  assert.deepEqual(done.result, { attempt: 2 });
  assert.equal(await h.transitions('test.yield', 'yielded'), 1);
  assert.equal(await h.transitions('test.yield', 'failed-with-retries'), 0);
  assert.equal(await h.transitions('test.yield', 'failed-with-backoff'), 0);
});

test('ctx.yield(delayMs) puts the job back as delayed; it becomes available after the delay and completes', async () => {
  const yieldedBefore = await h.transitions('test.yield', 'yielded');
  const recurredBefore = await h.transitions('test.yield', 'backoff-recurred');
  const id = await h.submit({ task: 'test.yield', params: { times: 1, delayMs: 600 }, retries: 0 });
  const delayed = await h.waitForState(id, ['delayed', 'completed']);
  assert.equal(delayed.state, 'delayed');
  const done = await h.waitForState(id, ['completed', 'failed']);
  assert.equal(done.state, 'completed');
  assert.deepEqual(done.result, { attempt: 2 });
  // The worker yielded at some time after the first run's activation and asked for the job to be
  // due 600 ms later (the `delayed` event carries that due time); the second run started after it.
  const [yielded] = await h.delays(id);
  assert.ok(yielded, 'the stream shows the activation and the delay');
  const { dueMs, activeMs } = yielded;
  assert.ok(dueMs - activeMs >= 599, 'due at least the delay after the first run began');
  assert.ok(Date.parse(done.startedAt!) >= dueMs - 1, 'the second run waited out the delay');
  assert.equal(await h.transitions('test.yield', 'yielded'), yieldedBefore + 1);
  assert.equal(await h.transitions('test.yield', 'backoff-recurred'), recurredBefore + 1);
});

test('every yield of a task counts: two yields 200 ms apart, then it completes on its third run', async () => {
  const yieldedBefore = await h.transitions('test.yield', 'yielded');
  // Spaced out: the yield marker is one flag per job, so two yields of one job faster than the
  // exporter applies them would count as one yield and one failed attempt (reported to the lead).
  const id = await h.submit({ task: 'test.yield', params: { times: 2, delayMs: 200 }, retries: 0 });
  const done = await h.waitForState(id, ['completed', 'failed']);
  assert.deepEqual(done.result, { attempt: 3 });
  assert.equal(await h.transitions('test.yield', 'yielded'), yieldedBefore + 2);
  assert.equal(await h.transitions('test.yield', 'failed-with-backoff'), 0);
});
