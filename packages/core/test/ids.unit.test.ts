import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isUlid, JobbersError, newTaskId, normalizeTaskId, taskIdPattern } from '@jobbers/core';
import fc from 'fast-check';

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

test('taskIdPattern, the id rule the API document states, accepts exactly what normalizeTaskId does', () => {
  const pattern = new RegExp(taskIdPattern);
  const accepted = (id: string) => {
    try {
      normalizeTaskId(id);
      return true;
    } catch (error) {
      if (error instanceof JobbersError && error.code === 'INVALID_TASK_ID') return false;
      throw error;
    }
  };
  const idLike = fc.oneof(
    fc.string({ maxLength: 140 }),
    fc.stringMatching(/^[A-Za-z0-9_.-]{1,130}$/),
    fc.stringMatching(/^[0-9]{1,30}$/),
    fc.stringMatching(/^[0-9A-Za-z]{26}$/),
    fc.constantFrom('meta', 'events', 'wait', 'id', 'jobbers', 'de', 'Meta', 'meta1'),
  );
  fc.assert(
    fc.property(idLike, (id) => pattern.test(id) === accepted(id)),
    { numRuns: 2000 },
  );
});
