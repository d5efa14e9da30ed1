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

/** The backoff (ms) before each retry of the task, in order. */
async function backoffs(id: string): Promise<number[]> {
  const events = await h.redis.xrange(`${h.prefix}:default:events`, '-', '+');
  return events
    .filter(([, f]) => f[1] === 'delayed' && f[3] === id)
    .map(([eventId, f]) => Number(f[f.indexOf('delay') + 1]) - Number(eventId.split('-')[0]));
}

function within(values: number[], ranges: [number, number][]) {
  assert.equal(values.length, ranges.length, `backoffs ${values}`);
  values.forEach((v, i) => {
    const [min, max] = ranges[i]!;
    assert.ok(v >= min - 5 && v <= max + 5, `backoff ${i + 1} was ${v} ms, expected ${min}..${max}`);
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
  assert.ok(new Set(spread).size > 1, `jitter varies the delays: ${spread}`);
});
