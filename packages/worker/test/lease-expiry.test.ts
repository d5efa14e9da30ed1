// Lease expiry with real processes and signals: a worker SIGKILLed mid-task loses its lease and the
// task runs again elsewhere without using a retry (timed-out); a worker frozen by SIGSTOP that wakes
// up after its task was recovered has its late completion rejected and counted, never applied.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { type Harness, startHarness, testLeaseMs } from './support/worker-harness.js';

let h: Harness;

before(async () => {
  h = await startHarness('lease');
});
afterEach(() => h.killWorkers());
after(async () => {
  await h?.close();
});

test('SIGKILL mid-task: after the lease the task is available again, no retry used, and completes on another worker', async () => {
  const first = await h.startWorker();
  const id = await h.submit({ task: 'test.finish', params: { ms: 60_000, laterMs: 100 }, retries: 0 });
  await h.waitForState(id, ['active']);
  assert.equal(await h.takenBy(id), first.child.pid);
  first.kill('SIGKILL');
  await first.exited;
  const killedAt = Date.now();

  const second = await h.startWorker();
  const done = await h.waitForState(id, ['completed', 'failed'], 15_000);
  const recoveredAfterMs = Date.parse(done.startedAt!) - killedAt;
  assert.equal(
    done.state,
    'completed',
    'with retries: 0 it could only complete if the recovery used no retry',
  );
  assert.deepEqual(done.result, { pid: second.child.pid, attempt: 2 });
  assert.ok(
    recoveredAfterMs >= testLeaseMs / 2,
    `recovered ${recoveredAfterMs} ms after the kill: not before the lease`,
  );
  assert.equal(await h.transitions('test.finish', 'timed-out'), 1);
  assert.equal(await h.transitions('test.finish', 'failed-with-retries'), 0);
  await h.waitForCounter('jobbers_tasks_timed_out_total', { task: 'test.finish' }, 1);
  second.kill('SIGTERM');
  assert.equal((await second.exited).code, 0);
});

test('a frozen worker (SIGSTOP) loses the task; its completion after SIGCONT is rejected and counted', async () => {
  const frozen = await h.startWorker();
  const id = await h.submit({ task: 'test.stubborn', params: { ms: 2500, laterMs: 50 }, retries: 0 });
  await h.waitForState(id, ['active']);
  frozen.kill('SIGSTOP');
  try {
    const other = await h.startWorker();
    const done = await h.waitForState(id, ['completed', 'failed'], 15_000);
    assert.deepEqual(done.result, { pid: other.child.pid, attempt: 2 });
    assert.equal(await h.transitions('test.stubborn', 'timed-out'), 1);
  } finally {
    frozen.kill('SIGCONT');
  }
  // test.stubborn ignores its signal, so whether the frozen worker first notices the lost lease
  // (and aborts the signal) or first finishes the run, it then reports a completion.
  await frozen.waitForOutput(/completion rejected/);
  await h.waitForCounter('jobbers_completions_rejected_total', { task: 'test.stubborn' }, 1);
  const task = await h.task(id);
  assert.equal(task.state, 'completed');
  assert.equal(
    task.result && (task.result as { attempt: number }).attempt,
    2,
    'the late result was not applied',
  );
  assert.equal(await h.transitions('test.stubborn', 'completed'), 1, 'completed once, not twice');
  frozen.kill('SIGTERM');
  assert.equal((await frozen.exited).code, 0);
});
