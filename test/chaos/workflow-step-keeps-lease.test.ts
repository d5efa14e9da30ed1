// A workflow node's step runs before its job is settled and may wait: here on the claim a killed
// worker left on the id of the node the step submits (it lives up to its TTL). The worker keeps
// the node's lease meanwhile, so the node runs once; with a lease that lapsed during the wait, it
// was taken back, run again, and waited again, over and over.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { idReservationKey, workflowClaimToken } from '@jobbers/core';
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
let manager: ManagerProcess;
let worker: WorkerProcess;
let admin: Redis;
const prefix = uniquePrefix('wflease');
const leaseMs = 1000;

before(async () => {
  redis = await startRedisServer();
  admin = new Redis(redis.url);
  const env = { REDIS_URL: redis.url, JOBBERS_PREFIX: prefix };
  [manager, worker] = await Promise.all([
    startManagerProcess(env),
    startWorkerProcess({ ...env, WORKER_LEASE_MS: String(leaseMs) }),
  ]);
});
after(async () => {
  await Promise.all([worker?.stop(), manager?.stop()]);
  admin?.disconnect();
  await redis?.stop();
});

/** Submits the workflow a -> b with the given id and answers it once it is no longer running. */
async function runChain(id: string) {
  const submitted = await manager.request('POST', '/v1/workflows', {
    name: 'chain',
    id,
    nodes: [
      { key: 'a', task: 'example.echo', params: { step: 1 } },
      { key: 'b', task: 'example.echo', params: { step: 2 }, dependsOn: ['a'] },
    ],
  });
  assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
  return waitFor(
    async () => {
      const reply = await manager.request('GET', `/v1/workflows/${id}`);
      return reply.body.state === 'running' ? undefined : reply.body;
    },
    { timeoutMs: 30_000, what: 'the workflow to finish' },
  );
}

test('a node whose step waits longer than its lease still runs once', { timeout: 60_000 }, async () => {
  const id = 'wf-lease-1';
  // As a worker killed mid-step leaves it: the next node's id claimed, its task never added.
  const claimMs = 4 * leaseMs;
  await admin.set(
    idReservationKey(prefix, `${id}.b`),
    JSON.stringify(['a-killed-worker', 'example.echo']),
    'PX',
    claimMs,
  );
  assert.equal((await runChain(id)).state, 'completed');
  const a = (await manager.request('GET', `/v1/tasks/${id}.a`)).body;
  assert.equal(a.state, 'completed');
  assert.equal(a.attemptsBy.length, 1, `node a started once: ${JSON.stringify(a.attemptsBy)}`);
});

test('a claim a killed worker left while advancing the same workflow is taken over', {
  timeout: 60_000,
}, async () => {
  const id = 'wf-claim-1';
  // Left by a worker killed after it claimed the next node's id with the workflow's token: it
  // outlives the wait for another submission's claim, so only a take-over lets the workflow finish.
  await admin.set(
    idReservationKey(prefix, `${id}.b`),
    JSON.stringify([workflowClaimToken(id), 'example.echo']),
    'PX',
    120_000,
  );
  assert.equal((await runChain(id)).state, 'completed');
  assert.equal((await manager.request('GET', `/v1/tasks/${id}.b`)).body.state, 'completed');
  assert.equal(await admin.exists(idReservationKey(prefix, `${id}.b`)), 0, 'the claim is dropped once added');
});

test('a plain submission never takes over a claim held with a workflow token', async () => {
  const id = 'wf-claim-2.a';
  const held = JSON.stringify([workflowClaimToken('wf-claim-2'), 'example.echo']);
  await admin.set(idReservationKey(prefix, id), held, 'PX', 60_000);
  const reply = await manager.request('POST', '/v1/tasks', { id, task: 'example.sleep', params: { ms: 0 } });
  assert.equal(reply.status, 409, JSON.stringify(reply.body));
  assert.equal(await admin.get(idReservationKey(prefix, id)), held, 'the claim is left as it was');
});
