import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defineTask, JobbersError, TaskRegistry } from '@jobbers/core';

const valid = {
  name: 'mail.send',
  queue: 'mail',
  params: { type: 'object', properties: { to: { type: 'string', format: 'email' } }, required: ['to'] },
  run: async () => 'sent',
};

test('defineTask fills the defaults: no retries, finish on shutdown', () => {
  const def = defineTask(valid);
  assert.equal(def.retries, 0);
  assert.equal(def.shutdown, 'finish');
});

for (const [what, patch] of [
  ['a bad name', { name: 'has space' }],
  ['a bad queue', { queue: 'q:1' }],
  ['negative retries', { retries: -1 }],
  ['an unknown backoff type', { backoff: { type: 'linear', delay: 10 } }],
  ['a fractional timeout', { timeout: 1.5 }],
  ['an unknown shutdown policy', { shutdown: 'explode' }],
  ['no run function', { run: undefined }],
] as const) {
  test(`defineTask rejects ${what}`, () => {
    assert.throws(
      () => defineTask({ ...valid, ...(patch as object) } as never),
      (e: unknown) => e instanceof JobbersError && e.code === 'TASK_DEFINITION_INVALID',
    );
  });
}

test('the registry validates params against the task schema', () => {
  const registry = new TaskRegistry([defineTask(valid)]);
  registry.validateParams('mail.send', { to: 'a@example.com' });
  assert.throws(
    () => registry.validateParams('mail.send', { to: 'not-an-email' }),
    (e: unknown) => e instanceof JobbersError && e.code === 'INVALID_PARAMS' && /format/.test(e.message),
  );
  assert.throws(
    () => registry.validateParams('mail.unknown', {}),
    (e: unknown) => e instanceof JobbersError && e.code === 'UNKNOWN_TASK_TYPE',
  );
});

test('the registry refuses a task type defined twice', () => {
  assert.throws(() => new TaskRegistry([defineTask(valid), defineTask(valid)]), /defined twice/);
});
