// Fault: Redis restarted mid-drain (SIGTERM, then started again on its AOF, appendonly yes). The
// processes reconnect by themselves; every task finishes once and the counts stay exact.
import { after, before, test } from 'node:test';
import { waitFor } from '../support/wait.js';
import { FaultStack } from './support/fault-stack.js';

const stack = new FaultStack({ label: 'restart', redisArgs: ['--appendonly', 'yes'] });
before(() => stack.start());
after(() => stack.close());

test('Redis restarted on its AOF mid-drain: nothing lost, counts exact, all reconnect', {
  timeout: 90_000,
}, async (t) => {
  await stack.loadUntilFaultPoint();
  const stoppedAt = Date.now();
  await stack.stopRedisGracefully();
  await waitFor(async () => (await stack.status(`${stack.managerUrl}/readyz`)) === 503, {
    timeoutMs: 5000,
    what: 'the manager not ready while Redis is down',
  });
  for (const worker of stack.workers) {
    await waitFor(async () => (await stack.status(`${worker.metricsUrl}/readyz`)) === 503, {
      timeoutMs: 5000,
      what: 'each worker not ready while Redis is down',
    });
  }
  await stack.restartRedis();
  t.diagnostic(`Redis down for ${Date.now() - stoppedAt} ms`);
  await stack.verify(t);
});
