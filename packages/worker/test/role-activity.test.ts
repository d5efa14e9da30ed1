// A worker records its role for each queue it serves before it activates anything (on Redis's
// clock), so the exporter can label activations without reading each job.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { roleActivityKey } from '@jobbers/core';
import { type Harness, startHarness } from './support/worker-harness.js';

let h: Harness;

before(async () => {
  h = await startHarness('roles');
});
after(async () => {
  await h?.close();
});

test('a started worker has recorded its role for its queues, and its activations carry that role', async () => {
  const key = roleActivityKey(h.prefix, 'default');
  assert.equal(await h.redis.zscore(key, 'default'), null, 'nothing recorded before a worker starts');
  await h.startWorker();
  const [seconds] = (await h.redis.time()) as [string | number, string | number];
  const recordedAt = Number(await h.redis.zscore(key, 'default'));
  assert.ok(
    Math.abs(Number(seconds) * 1000 - recordedAt) < 5000,
    `recorded on Redis's clock (${recordedAt})`,
  );
  const id = await h.submit({ task: 'test.finish', params: { ms: 1 } });
  assert.equal((await h.waitForState(id, ['completed', 'failed'])).state, 'completed');
  assert.equal(await h.counter('jobbers_tasks_selected_total', { task: 'test.finish', role: 'default' }), 1);
});
