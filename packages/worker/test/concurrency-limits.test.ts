// WORKER_CONCURRENT_TASKS bounds a worker across all the queues of its role and WORKER_QUEUE_CAPACITY
// bounds each queue, in a real worker process. Slots are taken before a job is activated, so
// BullMQ's own active count never exceeds the limits either (no job sits active waiting to run)
// and no job is taken and given back; both queues get slots while both have work.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { queueKey } from '@jobbers/core';
import { type Harness, startHarness, waitFor } from './support/worker-harness.js';

let h: Harness;

before(async () => {
  h = await startHarness('limits');
});
after(async () => {
  await h?.close();
});

interface Seen {
  inProcess: number;
  inQueue: number;
}

test('3 slots shared by two queues, alpha capped at 2: never more running, or active, than that', async () => {
  const ids: { id: string; task: string }[] = [];
  for (let i = 0; i < 8; i++) {
    for (const task of ['test.alpha', 'test.beta'])
      ids.push({ id: await h.submit({ task, params: { ms: 250 } }), task });
  }
  const alpha = h.client.queue('alpha');
  const beta = h.client.queue('beta');
  let maxActive = 0;
  let maxAlphaActive = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      // One transaction: both active lists at the same instant (two separate reads could see a job
      // finish in one queue and the next start in the other, and add up to one too many).
      const replies = (await h.redis
        .multi()
        .llen(`${queueKey(h.prefix, 'alpha')}:active`)
        .llen(`${queueKey(h.prefix, 'beta')}:active`)
        .exec()) as [Error | null, number][];
      const [a, b] = replies.map(([error, n]) => {
        if (error) throw error;
        return n;
      }) as [number, number];
      maxActive = Math.max(maxActive, a + b);
      maxAlphaActive = Math.max(maxAlphaActive, a);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  await h.startWorker({ WORKER_CONCURRENT_TASKS: '3', WORKER_QUEUE_CAPACITY: 'alpha=2' });
  await waitFor(
    async () => (await alpha.getCompletedCount()) === 8 && (await beta.getCompletedCount()) === 8,
    { timeoutMs: 20_000, what: 'all 16 tasks to complete' },
  );
  sampling = false;
  await sampler;

  const views = await Promise.all(ids.map(({ id }) => h.task(id)));
  const seen = (task: string) => views.filter((v) => v.task === task).map((v) => v.result as Seen);
  const all = [...seen('test.alpha'), ...seen('test.beta')];
  assert.equal(Math.max(...all.map((s) => s.inProcess)), 3, 'the process ran 3 at once, never more');
  assert.equal(Math.max(...seen('test.alpha').map((s) => s.inQueue)), 2, 'alpha ran 2 at once, never more');
  assert.ok(maxActive <= 3, `BullMQ never had more than 3 active, saw ${maxActive}`);
  assert.ok(maxAlphaActive <= 2, `alpha never had more than 2 active, saw ${maxAlphaActive}`);
  const firstSix = [...views].sort((a, b) => Date.parse(a.startedAt!) - Date.parse(b.startedAt!)).slice(0, 6);
  assert.ok(new Set(firstSix.map((v) => v.task)).size === 2, 'both queues ran from the start');
  assert.equal(await h.transitions('test.alpha', 'yielded'), 0, 'no alpha job was taken without a slot');
  assert.equal(await h.transitions('test.beta', 'yielded'), 0, 'no beta job was taken without a slot');
});
