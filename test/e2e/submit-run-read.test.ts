// End to end: HTTP submit -> a real worker process runs the task -> GET shows the result.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestManager, type TestManager } from '../support/manager.js';
import { bins, type RunningProcess, startProcess } from '../support/processes.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

let redis: RedisServer;
let manager: TestManager;
let worker: RunningProcess;

before(async () => {
  redis = await startRedisServer();
  const prefix = uniquePrefix('e2e');
  manager = await startTestManager({ redisUrl: redis.url, prefix });
  worker = startProcess(bins.worker, [], {
    REDIS_URL: redis.url,
    JOBBERS_PREFIX: prefix,
    JOBBERS_TASKS: '@jobbers/examples',
    WORKER_METRICS_PORT: '0',
    WORKER_CONCURRENT_TASKS: '4',
  });
  await worker.waitForOutput(/worker started/);
});

after(async () => {
  await worker?.stop();
  await manager?.close();
  await redis?.stop();
});

async function finished(id: string) {
  return waitFor(
    async () => {
      const res = await manager.request('GET', `/v1/tasks/${id}`);
      return ['completed', 'failed'].includes(res.body.state) ? res.body : undefined;
    },
    { timeoutMs: 15_000, what: `task ${id} to finish` },
  );
}

test('example.echo submitted over HTTP completes on a worker and GET returns its result', async () => {
  const submitted = await manager.request('POST', '/v1/tasks', {
    task: 'example.echo',
    params: { greeting: 'hello' },
  });
  assert.equal(submitted.status, 201);
  const task = await finished(submitted.body.id);
  assert.equal(task.state, 'completed');
  assert.deepEqual(task.result, { greeting: 'hello' });
  assert.equal(task.attempts, 1);
  assert.ok(Date.parse(task.startedAt) >= Date.parse(task.createdAt));
  assert.ok(Date.parse(task.finishedAt) >= Date.parse(task.startedAt));
});

test('example.flaky retries with its backoff and completes on the attempt after failTimes', async () => {
  const submitted = await manager.request('POST', '/v1/tasks', {
    task: 'example.flaky',
    params: { failTimes: 2 },
  });
  const task = await finished(submitted.body.id);
  assert.equal(task.state, 'completed');
  assert.deepEqual(task.result, { attempt: 3 });
  assert.equal(task.attempts, 3);
});

test('a task that runs out of retries is failed with its error and attempts', async () => {
  const submitted = await manager.request('POST', '/v1/tasks', {
    task: 'example.flaky',
    params: { failTimes: 5 },
    retries: 1,
  });
  const task = await finished(submitted.body.id);
  assert.equal(task.state, 'failed');
  assert.equal(task.attempts, 2);
  assert.match(task.error.message, /flaky failure on attempt 2/);
});

test('an execution timeout fails the attempt with reason timeout', async () => {
  const submitted = await manager.request('POST', '/v1/tasks', {
    task: 'example.sleep',
    params: { ms: 5000 },
    timeout: 100,
  });
  const task = await finished(submitted.body.id);
  assert.equal(task.state, 'failed');
  assert.equal(task.error.reason, 'timeout');
});

test('SIGTERM lets a running task finish, then the worker exits 0', async () => {
  const submitted = await manager.request('POST', '/v1/tasks', {
    task: 'example.sleep',
    params: { ms: 700 },
  });
  await waitFor(
    async () => (await manager.request('GET', `/v1/tasks/${submitted.body.id}`)).body.state === 'active',
    {
      what: 'the sleep task to start',
    },
  );
  worker.kill('SIGTERM');
  const exit = await worker.exited;
  assert.equal(exit.code, 0);
  const task = (await manager.request('GET', `/v1/tasks/${submitted.body.id}`)).body;
  assert.equal(task.state, 'completed');
});
