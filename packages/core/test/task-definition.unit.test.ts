import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defineTask, JobbersError, rateLimitOf, TaskRegistry } from '@jobbers/core';

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

test('defineTask takes a rate limit with per in milliseconds or with a unit', () => {
  assert.deepEqual(
    rateLimitOf(defineTask({ ...valid, rateLimit: { max: 100, per: '1m', key: 'to' } }).rateLimit!),
    {
      max: 100,
      perMs: 60_000,
      key: 'to',
    },
  );
  assert.deepEqual(rateLimitOf(defineTask({ ...valid, rateLimit: { max: 5, per: 250 } }).rateLimit!), {
    max: 5,
    perMs: 250,
  });
});

for (const [what, rateLimit, message] of [
  ['a rate limit of 0', { max: 0, per: '1s' }, /rateLimit\.max must be a whole number 1\.\.100000 \(got 0\)/],
  ['a fractional max', { max: 1.5, per: '1s' }, /rateLimit\.max/],
  [
    'a window without a known unit',
    { max: 1, per: '1 minute' },
    /rateLimit\.per must be 1 ms\.\.1 day.*"1 minute"/,
  ],
  ['a window of 0', { max: 1, per: 0 }, /rateLimit\.per/],
  ['a window over a day', { max: 1, per: '2d' }, /rateLimit\.per/],
  ['an empty key', { max: 1, per: '1s', key: '' }, /rateLimit\.key must name a param/],
  ['an unknown option', { max: 1, per: '1s', burst: 3 }, /unknown option\(s\) burst/],
  [
    'a key that is not a param',
    { max: 1, per: '1s', key: 'customer' },
    /rateLimit\.key "customer" is not one of the task's params \(to\)/,
  ],
  ['no object', 10, /rateLimit must be an object/],
] as const) {
  test(`defineTask rejects ${what} with a clear error`, () => {
    assert.throws(
      () => defineTask({ ...valid, rateLimit: rateLimit as never }),
      (e: unknown) =>
        e instanceof JobbersError &&
        e.code === 'TASK_DEFINITION_INVALID' &&
        /^task "mail\.send" is invalid: /.test(e.message) &&
        message.test(e.message),
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
