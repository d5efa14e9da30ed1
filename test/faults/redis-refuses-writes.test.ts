// Fault: Redis refuses writes (OOM: maxmemory reached under noeviction) mid-drain, held until every
// worker has seen its metrics flush refused, then lifted. Tasks whose finish was refused run again
// once their lease ends; the flushes held meanwhile land once, so the counts stay exact.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../support/wait.js';
import { FaultStack } from './support/fault-stack.js';

const stack = new FaultStack({ label: 'oom' });
before(() => stack.start());
after(() => stack.close());

test('Redis refusing writes mid-drain: nothing lost, counts exact, flushes recover', {
  timeout: 90_000,
}, async (t) => {
  await stack.loadUntilFaultPoint();
  await stack.redis.config('SET', 'maxmemory-policy', 'noeviction');
  await stack.redis.config('SET', 'maxmemory', '1');
  const refusedAt = Date.now();
  try {
    const response = await fetch(`${stack.managerUrl}/v1/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task: 'example.echo', params: {} }),
      signal: AbortSignal.timeout(5000),
    });
    const body = await response.json();
    assert.equal(response.status, 503, JSON.stringify(body));
    assert.equal(body.error.code, 'REDIS_UNAVAILABLE');
    for (const worker of stack.workers) {
      await waitFor(async () => (await stack.flushFailures(worker)) >= 3, {
        timeoutMs: 10_000,
        what: 'each worker to have had three metrics flushes refused (about 3 s)',
      });
    }
  } finally {
    await stack.redis.config('SET', 'maxmemory', '0');
  }
  t.diagnostic(`writes refused for ${Date.now() - refusedAt} ms`);
  await stack.verify(t);
});
