// The sliding window log that admits starts of a rate-limited task type, against a real Redis:
// `max` starts are admitted per window, the next is told to wait until the oldest leaves it, the
// waits handed to a queue of refused starts are spread one interval (per / max) apart, and each key
// value and each task type has a budget of its own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { acquireRateLimit, type RateLimit, rateLimitKeys } from '@jobbers/core';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';

const fixture = useRedisServer();

function acquire(prefix: string, limit: RateLimit, params: unknown = {}, task = 'demo.limited') {
  return acquireRateLimit(fixture.redis, prefix, { queue: 'q', task, id: 'job', params, limit });
}

test('max starts are admitted per window; the next waits until the oldest leaves the window', async () => {
  const prefix = uniquePrefix('rl');
  const limit = { max: 3, perMs: 60_000 };
  for (let i = 0; i < 3; i++) assert.equal(await acquire(prefix, limit), 0, `start ${i + 1} admitted`);
  const wait = await acquire(prefix, limit);
  assert.ok(wait > 55_000 && wait <= 60_000, `the 4th waits for the oldest to leave (${wait} ms)`);
  const [log] = rateLimitKeys(prefix, 'q', 'demo.limited', '');
  assert.equal(await fixture.redis.zcard(log), 3, 'a refused start is not recorded');
  assert.ok((await fixture.redis.pttl(log)) > 55_000, 'the log expires one window after its last start');
});

test('refused starts are handed wake times one interval apart, not all the same', async () => {
  const prefix = uniquePrefix('rl');
  const limit = { max: 4, perMs: 40_000 };
  for (let i = 0; i < 4; i++) await acquire(prefix, limit);
  const waits: number[] = [];
  for (let i = 0; i < 5; i++) waits.push(await acquire(prefix, limit));
  for (let i = 1; i < waits.length; i++) {
    // Each call reads Redis's clock anew: the gap between wake times is the interval, give or take
    // the time between the two calls.
    const gap = waits[i]! - waits[i - 1]!;
    assert.ok(gap >= 10_000 - 1000 && gap <= 10_000, `wake times ${gap} ms apart (interval 10,000)`);
  }
});

test('each key value, and each task type, has a budget of its own', async () => {
  const prefix = uniquePrefix('rl');
  const limit = { max: 1, perMs: 60_000, key: 'customer' };
  assert.equal(await acquire(prefix, limit, { customer: 'a' }), 0);
  assert.ok((await acquire(prefix, limit, { customer: 'a' })) > 0, 'a second start of customer a waits');
  assert.equal(await acquire(prefix, limit, { customer: 'b' }), 0, 'customer b has its own budget');
  assert.equal(await acquire(prefix, limit, { customer: 7 }), 0, 'a number is a value like any other');
  assert.equal(await acquire(prefix, limit, {}), 0, 'tasks without the param share one budget');
  assert.ok((await acquire(prefix, limit, { customer: null })) > 0, 'null is the same as absent');
  assert.equal(
    await acquire(prefix, limit, { customer: 'a' }, 'demo.other'),
    0,
    'another type, another budget',
  );
});

test('a short window frees its places once it has passed', async () => {
  const prefix = uniquePrefix('rl');
  const limit = { max: 2, perMs: 50 };
  assert.equal(await acquire(prefix, limit), 0);
  assert.equal(await acquire(prefix, limit), 0);
  const wait = await acquire(prefix, limit);
  assert.ok(wait >= 1 && wait <= 50, `waits at most the window (${wait} ms)`);
  await new Promise((resolve) => setTimeout(resolve, wait + 1));
  assert.equal(await acquire(prefix, limit), 0, 'admitted once the wait is over');
});
