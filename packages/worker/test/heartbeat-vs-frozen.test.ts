// Slow versus frozen, with real worker processes and a lease of 1.5 s: a task that heartbeats runs
// for several lease periods undisturbed (GET shows lastHeartbeatAt moving), while a task whose
// worker's event loop is blocked is recovered by another worker and its late completion rejected;
// a task that heartbeated and then fell silent is taken as frozen too.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { type Harness, startHarness, testLeaseMs, waitFor } from './support/worker-harness.js';

let h: Harness;

before(async () => {
  h = await startHarness('heartbeat');
});
afterEach(() => h.killWorkers());
after(async () => {
  await h?.close();
});

test('a heartbeating task outlives three leases while a blocked one is recovered and completed elsewhere', async () => {
  const blocked = await h.startWorker({ WORKER_CONCURRENT_TASKS: '1' });
  const frozenId = await h.submit({ task: 'test.block', params: { ms: 4 * testLeaseMs }, retries: 0 });
  await h.waitForState(frozenId, ['active']);
  const healthy = await h.startWorker({ WORKER_CONCURRENT_TASKS: '4' });
  const slowId = await h.submit({ task: 'example.heartbeat', params: { seconds: 5 }, retries: 0 });
  const running = await h.waitForState(slowId, ['active']);

  const firstBeat = await waitFor(async () => (await h.task(slowId)).lastHeartbeatAt, {
    what: 'a heartbeat',
  });
  const recovered = await h.waitForState(frozenId, ['completed', 'failed'], 15_000);
  assert.deepEqual(recovered.result, { pid: healthy.child.pid, attempt: 2 });
  const laterBeat = await waitFor(
    async () => {
      const beat = (await h.task(slowId)).lastHeartbeatAt;
      return beat && beat > firstBeat ? beat : undefined;
    },
    { what: 'lastHeartbeatAt to move on' },
  );
  assert.ok(laterBeat > firstBeat);

  const slow = await h.waitForState(slowId, ['completed', 'failed'], 15_000);
  assert.equal(slow.state, 'completed');
  assert.deepEqual(slow.result, { beats: 5 });
  assert.equal(slow.attempts, 1, 'never recovered: one run');
  assert.ok(Date.parse(slow.finishedAt!) - Date.parse(running.startedAt!) > 3 * testLeaseMs);
  assert.ok(Date.parse(slow.lastHeartbeatAt!) > Date.parse(running.startedAt!) + 3 * testLeaseMs);
  assert.equal(await h.transitions('example.heartbeat', 'timed-out'), 0);
  assert.equal(await h.transitions('test.block', 'timed-out'), 1);

  await blocked.waitForOutput(/completion rejected/, 15_000);
  await h.waitForCounter('jobbers_completions_rejected_total', { task: 'test.block' }, 1);
  assert.equal((await h.task(frozenId)).attempts, 2);
});

test('a task that heartbeats and then falls silent loses its lease: its signal is aborted and it runs again', async () => {
  const worker = await h.startWorker({ WORKER_CONCURRENT_TASKS: '2' });
  const id = await h.submit({
    task: 'test.silent-after-heartbeats',
    params: { beats: 2, ms: 60_000 },
    retries: 0,
  });
  const done = await h.waitForState(id, ['completed', 'failed'], 15_000);
  assert.equal(done.state, 'completed');
  assert.deepEqual(done.result, { pid: worker.child.pid, attempt: 2 });
  assert.ok(done.lastHeartbeatAt, 'its heartbeats were recorded');
  assert.equal(await h.transitions('test.silent-after-heartbeats', 'timed-out'), 1);
  await worker.waitForOutput(/lease lost/);
});
