// Fault: Redis frozen (SIGSTOP) for 10 s mid-drain, then SIGCONT. Leases run out meanwhile, so some
// tasks run again (timed-out); every task still finishes once, and the counts stay exact.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../support/wait.js';
import { FaultStack } from './support/fault-stack.js';

const stack = new FaultStack({ label: 'frozen' });
before(() => stack.start());
after(() => stack.close());

test('Redis frozen for 10 s mid-drain: nothing lost, counts exact, all recover without restart', {
  timeout: 90_000,
}, async (t) => {
  const load = await stack.loadUntilFaultPoint();
  stack.server.process.kill('SIGSTOP');
  const frozenAt = Date.now();
  try {
    await waitFor(async () => (await stack.status(`${stack.managerUrl}/readyz`)) === 503, {
      timeoutMs: 5000,
      what: 'the manager not ready',
    });
    for (const worker of stack.workers) {
      await waitFor(async () => (await stack.status(`${worker.metricsUrl}/readyz`)) === 503, {
        timeoutMs: 5000,
        what: 'each worker not ready',
      });
    }
    const scrape = await stack.managerSamples();
    assert.ok(scrape.some((s) => s.name === 'jobbers_cluster_metrics_up' && s.value === 0));
    // The fault lasts 10 s by design: long enough for leases (3 s) to run out.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 10_000 - (Date.now() - frozenAt))));
  } finally {
    stack.server.process.kill('SIGCONT');
  }
  t.diagnostic(`frozen for ${Date.now() - frozenAt} ms`);
  assert.equal(load.ids.length, 2000);
  await stack.verify(t);
});
