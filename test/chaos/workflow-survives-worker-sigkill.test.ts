// A worker SIGKILLed while it runs a workflow's node: the node runs again on another worker after
// its lease, the workflow completes, each node finishes once in its history, the node after it is
// submitted once, and the gauge ends exact.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { countAvailableByTask } from '@jobbers/core';
import { Redis } from 'ioredis';
import { type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import {
  type ManagerProcess,
  startManagerProcess,
  startWorkerProcess,
  type WorkerProcess,
} from '../support/stack.js';
import { waitFor } from '../support/wait.js';

let redis: RedisServer;
let admin: Redis;
let manager: ManagerProcess;
const workers: WorkerProcess[] = [];
const prefix = uniquePrefix('wfkill');
const env = () => ({ REDIS_URL: redis.url, JOBBERS_PREFIX: prefix, WORKER_LEASE_MS: '2000' });

before(async () => {
  redis = await startRedisServer();
  admin = new Redis(redis.url);
  manager = await startManagerProcess(env());
});
after(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await manager?.stop();
  admin?.disconnect();
  await redis?.stop();
});

test('a workflow whose worker is SIGKILLed mid-node completes, each node once', async () => {
  workers.push(await startWorkerProcess(env()));
  const submitted = await manager.request('POST', '/v1/workflows', {
    name: 'killed',
    nodes: [
      { key: 'first', task: 'example.square', params: { n: 3 } },
      { key: 'slow', task: 'example.sleep', params: { ms: 3000 }, dependsOn: ['first'] },
      {
        key: 'fan',
        task: 'example.square',
        fanOut: { params: [1, 2, 3].map((n) => ({ n })) },
        dependsOn: ['slow'],
      },
      { key: 'total', task: 'example.sum', params: {}, dependsOn: ['fan', 'first'] },
    ],
  });
  assert.equal(submitted.status, 201);
  const id = submitted.body.id as string;
  await waitFor(async () => (await manager.request('GET', `/v1/tasks/${id}.slow`)).body.state === 'active', {
    timeoutMs: 20_000,
    what: 'the slow node to run',
  });
  workers[0]!.child.kill('SIGKILL');
  await workers[0]!.exited;
  workers.push(await startWorkerProcess(env()));

  const done = await waitFor(
    async () => {
      const view = (await manager.request('GET', `/v1/workflows/${id}`)).body;
      return view.state === 'running' ? undefined : view;
    },
    { timeoutMs: 40_000, what: 'the workflow to finish after the kill' },
  );
  assert.equal(done.state, 'completed');
  const keys = done.history.map((h: { key: string }) => h.key).sort();
  assert.deepEqual(keys, ['fan-0', 'fan-1', 'fan-2', 'first', 'slow', 'total'], 'each node finished once');
  const slow = (await manager.request('GET', `/v1/tasks/${id}.slow`)).body;
  assert.ok(slow.attempts >= 2, `the killed node ran again (attempts ${slow.attempts})`);
  const total = (await manager.request('GET', `/v1/tasks/${id}.total`)).body;
  assert.deepEqual(total.result, { value: 9 + 1 + 4 + 9, parts: 4 });
  // Every node is one task, completed; no other task was made.
  assert.deepEqual(
    done.nodes.map((n: { state: string }) => n.state),
    Array(6).fill('completed'),
  );
  const counts = await manager.request('GET', '/v1/queues/default');
  assert.equal(counts.body.counts.completed, 6, JSON.stringify(counts.body.counts));
  assert.deepEqual(Object.fromEntries(await countAvailableByTask(admin, prefix, 'default')), {});
});
