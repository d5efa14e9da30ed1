import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isUlid, JobbersError, newTaskId, normalizeTaskId } from '@jobbers/core';

test('new task ids are ULIDs and sort by creation time', async () => {
  const first = newTaskId();
  await new Promise((resolve) => setTimeout(resolve, 2));
  const second = newTaskId();
  assert.ok(isUlid(first));
  assert.ok(first < second);
});

test('a client-supplied ULID is accepted and upper-cased', () => {
  const id = newTaskId();
  assert.equal(normalizeTaskId(id.toLowerCase()), id);
});

test('client ids of safe characters are accepted', () => {
  assert.equal(normalizeTaskId('order-42.retry_1'), 'order-42.retry_1');
});

for (const bad of [
  '',
  '123',
  'has space',
  'a:b',
  'x'.repeat(129),
  '-leading',
  'meta',
  'events',
  'wait',
  'id',
  'jobbers',
]) {
  test(`client id ${JSON.stringify(bad.slice(0, 20))} is rejected with INVALID_TASK_ID`, () => {
    assert.throws(
      () => normalizeTaskId(bad),
      (e: unknown) => e instanceof JobbersError && e.code === 'INVALID_TASK_ID',
    );
  });
}
