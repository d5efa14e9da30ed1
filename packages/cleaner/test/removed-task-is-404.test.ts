// A removed task is gone from the API: its job hash (heartbeat field included), its logs and its
// Jobbers markers go, so GET /v1/tasks/:id answers 404.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jobbersKey, jobKey, markYield } from '@jobbers/core';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';
import { runCleanerBin } from './support/cli.js';

let server: RedisServer;
let redis: Redis;
let manager: TestManager;
const prefix = uniquePrefix('404');

before(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
  manager = await startTestManager({ redisUrl: server.url, prefix });
});

after(async () => {
  await manager?.close();
  redis?.disconnect();
  await server?.stop();
});

async function submit(body: Record<string, unknown>): Promise<string> {
  const response = await manager.request('POST', '/v1/tasks', body);
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.id;
}

/** Runs the one waiting task on a real BullMQ worker, with a log line and a heartbeat like Jobbers' worker. */
async function complete(id: string): Promise<void> {
  const connection = new Redis(server.url, { maxRetriesPerRequest: null });
  const worker = new Worker(
    'default',
    async (job) => {
      await job.log('ran');
      await redis.hset(jobKey(prefix, 'default', job.id!), 'jbhb', Date.now());
      return job.data.params;
    },
    { connection, prefix, skipVersionCheck: true },
  );
  worker.on('error', () => {});
  try {
    await waitFor(async () => (await manager.request('GET', `/v1/tasks/${id}`)).body.state === 'completed', {
      what: `task ${id} to complete`,
    });
  } finally {
    await worker.close();
    connection.disconnect();
  }
}

test('after the cleaner removes completed, waiting and delayed tasks, GET /v1/tasks/:id is 404', async () => {
  const completed = await submit({ task: 'example.echo', params: { n: 1 } });
  await complete(completed);
  const waiting = await submit({ task: 'example.echo', params: { n: 2 } });
  const delayed = await submit({ task: 'example.sleep', params: { ms: 1 }, delay: 600_000 });
  await markYield(redis, prefix, 'default', waiting);
  const kept = await submit({ task: 'example.flaky', params: { failTimes: 0 } });

  const before = await manager.request('GET', `/v1/tasks/${completed}`);
  assert.equal(before.status, 200);
  assert.ok(before.body.lastHeartbeatAt, 'the heartbeat field is there before');
  assert.equal(await redis.exists(`${jobKey(prefix, 'default', completed)}:logs`), 1);
  for (const id of [waiting, delayed])
    assert.equal((await manager.request('GET', `/v1/tasks/${id}`)).status, 200);

  const result = await runCleanerBin(
    { redisUrl: server.url, prefix, env: { JOBBERS_TASKS: '@jobbers/examples' } },
    ['--task', 'example.echo', '--task', 'example.sleep', '--state', 'completed,waiting,delayed', '--json'],
  );
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.report!.queues, ['default'], 'the queues come from the task registry');
  assert.equal(result.report!.removed.total, 3);

  for (const id of [completed, waiting, delayed]) {
    const response = await manager.request('GET', `/v1/tasks/${id}`);
    assert.equal(response.status, 404, `${id}: ${JSON.stringify(response.body)}`);
    assert.deepEqual(await redis.keys(`${jobKey(prefix, 'default', id)}*`), [], `no key of ${id} is left`);
  }
  assert.equal(
    await redis.hexists(jobbersKey(prefix, 'default', 'yields'), waiting),
    0,
    'yield marker removed',
  );
  assert.equal((await manager.request('GET', `/v1/tasks/${kept}`)).status, 200, 'other task types stay');
  const queue = new Queue('default', { connection: redis, prefix, skipVersionCheck: true });
  assert.deepEqual(await queue.getJobCounts('completed', 'wait', 'delayed'), {
    completed: 0,
    wait: 1,
    delayed: 0,
  });
  await queue.close();
});
