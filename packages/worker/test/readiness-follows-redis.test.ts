// A worker's /readyz follows its Redis: not ready while Redis is frozen (SIGSTOP) or gone, ready
// again once it answers, without a restart; /metrics keeps answering throughout.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { bins, type RunningProcess, startProcess } from '../../../test/support/processes.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';

let redis: RedisServer;
let worker: RunningProcess;
let baseUrl: string;

before(async () => {
  redis = await startRedisServer();
  worker = startProcess(bins.worker, [], {
    REDIS_URL: redis.url,
    JOBBERS_PREFIX: uniquePrefix('ready'),
    JOBBERS_TASKS: '@jobbers/examples',
    WORKER_METRICS_PORT: '0',
  });
  await worker.waitForOutput(/health and metrics listening/);
  baseUrl = `http://127.0.0.1:${/"metricsPort":(\d+)/.exec(worker.output())![1]}`;
});
after(async () => {
  redis?.process.kill('SIGCONT');
  await worker?.stop();
  await redis?.stop();
});

async function status(path: string): Promise<number> {
  const response = await fetch(`${baseUrl}${path}`, { signal: AbortSignal.timeout(5000) });
  await response.arrayBuffer();
  return response.status;
}

test('/readyz is 503 while Redis is frozen and 200 again after SIGCONT', async () => {
  await waitFor(async () => (await status('/readyz')) === 200, { what: 'the worker ready' });
  redis.process.kill('SIGSTOP');
  try {
    await waitFor(async () => (await status('/readyz')) === 503, { what: 'not ready while frozen' });
    assert.equal(await status('/metrics'), 200);
    assert.equal(await status('/healthz'), 200);
  } finally {
    redis.process.kill('SIGCONT');
  }
  await waitFor(async () => (await status('/readyz')) === 200, { what: 'ready after SIGCONT' });
});
