// Retry backoff end to end in a real worker: fixed or exponential, with jitter, set per task type
// and overridable per submission. Each backoff is read from BullMQ's `delayed` event: the time the
// job is due minus the time it failed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type Harness, startHarness } from './support/worker-harness.js';

let h: Harness;

before(async () => {
  h = await startHarness('backoff');
  await h.startWorker({ WORKER_CONCURRENT_TASKS: '4' });
});
after(async () => {
  await h?.close();
});

/**
 * Bounds (ms) on the backoff before each retry of the task, in order. The worker asked for the job
 * to be due at (failure time + backoff), and failed the attempt between its `active` and `delayed`
 * events, so the backoff lies between due minus the one and due minus the other, however late a
 * loaded machine runs either step.
 */
async function backoffs(id: string): Promise<[number, number][]> {
  return (await h.delays(id)).map(({ dueMs, activeMs, delayedMs }) => [dueMs - delayedMs, dueMs - activeMs]);
}

/** Each backoff's bounds must meet its expected range (1 ms either side for clock rounding). */
function within(values: [number, number][], ranges: [number, number][]) {
  assert.equal(values.length, ranges.length, `backoffs ${JSON.stringify(values)}`);
  values.forEach(([low, high], i) => {
    const [min, max] = ranges[i]!;
    assert.ok(low <= high, `backoff ${i + 1}: bounds ${low}..${high} out of order`);
    assert.ok(
      low <= max + 1 && high >= min - 1,
      `backoff ${i + 1} was ${low}..${high} ms, expected ${min}..${max}`,
    );
  });
}

async function completed(id: string) {
  const done = await h.waitForState(id, ['completed', 'failed'], 20_000);
  assert.equal(done.state, 'completed');
  return done;
}

test('the task type’s backoff: exponential from 80 ms with jitter 0.5', async () => {
  const id = await h.submit({ task: 'test.backoff', params: { failTimes: 3 } });
  assert.deepEqual((await completed(id)).result, { attempt: 4 });
  const values = await backoffs(id);
  within(values, [
    [40, 80],
    [80, 160],
    [160, 320],
  ]);
});

test('example.flaky’s own fixed 100 ms backoff', async () => {
  const id = await h.submit({ task: 'example.flaky', params: { failTimes: 2 } });
  await completed(id);
  within(await backoffs(id), [
    [100, 100],
    [100, 100],
  ]);
});

test('a submission overrides the type’s backoff: exponential without jitter, then fixed with jitter', async () => {
  const exponential = await h.submit({
    task: 'example.flaky',
    params: { failTimes: 3 },
    backoff: { type: 'exponential', delay: 50 },
  });
  const jittered = await h.submit({
    task: 'example.flaky',
    params: { failTimes: 3 },
    backoff: { type: 'fixed', delay: 200, jitter: 0.5 },
  });
  await Promise.all([completed(exponential), completed(jittered)]);
  within(await backoffs(exponential), [
    [50, 50],
    [100, 100],
    [200, 200],
  ]);
  const spread = await backoffs(jittered);
  within(spread, [
    [100, 200],
    [100, 200],
    [100, 200],
  ]);
  // Without jitter every delay would be the full 200 ms.
  assert.ok(
    spread.some(([, high]) => high < 199),
    `jitter shortens some delays: ${JSON.stringify(spread)}`,
  );
});
