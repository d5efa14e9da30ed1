// Fault: the network between the workers and Redis cut mid-drain (a TCP proxy drops every
// connection and refuses new ones), held until each worker is not ready and has had a metrics flush
// refused, then restored. Workers reconnect by themselves; every task finishes once, counts exact.
import { after, before, test } from 'node:test';
import { waitFor } from '../support/wait.js';
import { FaultStack } from './support/fault-stack.js';
import { TcpProxy } from './support/tcp-proxy.js';

let proxy: TcpProxy | undefined;
const stack = new FaultStack({
  label: 'netcut',
  workerRedisUrl: async (server) => {
    proxy ??= new TcpProxy(server.port);
    const port = await proxy.start();
    return `redis://127.0.0.1:${port}`;
  },
});

before(() => stack.start());
after(async () => {
  await stack.close();
  await proxy?.close();
});

test('the workers cut off from Redis mid-drain: nothing lost, counts exact, all reconnect', {
  timeout: 90_000,
}, async (t) => {
  await stack.loadUntilFaultPoint();
  proxy!.cut();
  const cutAt = Date.now();
  try {
    for (const worker of stack.workers) {
      await waitFor(async () => (await stack.status(`${worker.metricsUrl}/readyz`)) === 503, {
        timeoutMs: 5000,
        what: 'each worker not ready while cut off',
      });
      const before = await stack.flushFailures(worker);
      await waitFor(async () => (await stack.flushFailures(worker)) > before, {
        timeoutMs: 5000,
        what: 'each worker to have a metrics flush fail while cut off',
      });
    }
  } finally {
    proxy!.restore();
  }
  t.diagnostic(`cut off for ${Date.now() - cutAt} ms; ${proxy!.dropped} connections dropped or refused`);
  await stack.verify(t);
});
