// With JOBBERS_API_KEYS set, no spelling of a /v1 route reaches its handler without the key: the
// check belongs to the matched route, so encoded bytes, absolute-form targets, doubled slashes, case
// and trailing characters are refused or not found, and nothing is enqueued or paused.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue } from 'bullmq';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { rawRequest } from '../../../test/support/raw-http.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';

let redis: RedisServer;
let manager: TestManager;
let queue: Queue;
const prefix = uniquePrefix('auth-spellings');
const submit = JSON.stringify({ task: 'example.echo', params: {} });
const batch = JSON.stringify({ tasks: [{ task: 'example.echo', params: {} }] });

before(async () => {
  redis = await startRedisServer();
  manager = await startTestManager({ redisUrl: redis.url, prefix, apiKeys: ['k1', 'k2'] });
  queue = new Queue('default', { connection: manager.connection, prefix });
});
after(async () => {
  await queue?.close();
  await manager?.close();
  await redis?.stop();
});

const submitTargets = [
  '/v1/tasks',
  '/%761/tasks',
  '/%76%31/tasks',
  '/v%31/tasks',
  '/v1/%74asks',
  '/v1/task%73',
  '/%76%31/%74%61%73%6b%73',
  'http://x/v1/tasks',
  'http://x/%761/tasks',
  'HTTP://X/v1/tasks',
  `http://user@x:1/v1/tasks`,
  '//v1/tasks',
  '/v1//tasks',
  '//v1//tasks',
  '/V1/tasks',
  '/v1/TASKS',
  '/v1/tasks/',
  '/v1/tasks?',
  '/v1/tasks?x=1',
  '/v1/tasks?v1',
  '/v1/tasks#x',
  '/v1/tasks;x',
  '/v1/tasks%00',
  '/v1/tasks%20',
  '/v1/./tasks',
  '/x/../v1/tasks',
  '/v1/tasks/../tasks',
  '/v1%2Ftasks',
];
const pauseTargets = [
  '/v1/queues/default/pause',
  '/%76%31/queues/default/pause',
  '/%761/queues/default/pause',
  '/v1/%71ueues/default/pause',
  '/v1/queues/%64efault/pause',
  '/v1/queues/default/%70ause',
  '/v1/queues/%64%65%66%61%75%6c%74/%70%61%75%73%65',
  'http://x/%76%31/queues/default/pause',
  'http://x/v1/queues/default/pause',
  '//v1/queues/default/pause',
  '/v1/queues//default/pause',
  '/v1/queues/default/pause/',
  '/v1/queues/default/pause?x=1',
  '/V1/queues/default/pause',
];
const rows = [
  ...submitTargets.map((target) => ({ method: 'POST', target, body: submit })),
  ...submitTargets.map((target) => ({
    method: 'POST',
    target: target.replace('tasks', 'tasks/batch'),
    body: batch,
  })),
  ...submitTargets.map((target) => ({
    method: 'POST',
    target: target.replace('tasks', 'tasks/retry'),
    body: '{"all":true}',
  })),
  ...pauseTargets.map((target) => ({ method: 'POST', target })),
  ...pauseTargets.map((target) => ({ method: 'GET', target: target.replace('/pause', '') })),
  { method: 'GET', target: '/%761/tasks?limit=5' },
  { method: 'GET', target: '/%761/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV' },
  { method: 'POST', target: '/%761/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel' },
];

test('no spelling of a /v1 route is served without a key, and nothing is enqueued or paused', async () => {
  for (const row of rows) {
    const reply = await rawRequest(manager.baseUrl, row);
    const what = `${row.method} ${row.target} -> ${reply.status} ${reply.body}`;
    assert.ok([400, 401, 404, 405].includes(reply.status), what);
    assert.ok(JSON.parse(reply.body).error.code, what);
  }
  assert.deepEqual(await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'paused'), {
    waiting: 0,
    prioritized: 0,
    delayed: 0,
    paused: 0,
  });
  assert.equal(await queue.isPaused(), false);
});

test('the encoded and absolute-form spellings do reach the route with the key (the table is not empty words)', async () => {
  for (const target of ['/%761/tasks', '/%76%31/%74%61%73%6b%73', 'http://x/v1/tasks', '/v1/tasks?x=1']) {
    const reply = await rawRequest(manager.baseUrl, {
      method: 'POST',
      target,
      body: submit,
      headers: { authorization: 'Bearer k1' },
    });
    assert.equal(reply.status, 201, `${target} -> ${reply.status} ${reply.body}`);
  }
  assert.equal(await queue.getWaitingCount(), 4);
  await queue.obliterate({ force: true });
});

test('malformed Authorization headers are 401, a wrong key 403, both with the coded error body', async () => {
  const malformed = [
    'Bearer k1 garbage',
    'Bearer k1,k2',
    'Bearer k1 k2',
    'Bearer',
    'Bearer ',
    'Bearerk1',
    'Basic k1',
    'k1',
    'Bearer\tk1',
    'Token k1',
  ];
  for (const authorization of malformed) {
    const reply = await rawRequest(manager.baseUrl, {
      method: 'POST',
      target: '/v1/tasks',
      body: submit,
      headers: { authorization },
    });
    assert.equal(reply.status, 401, `${authorization} -> ${reply.status} ${reply.body}`);
    assert.equal(JSON.parse(reply.body).error.code, 'UNAUTHORIZED');
  }
  for (const authorization of ['Bearer k3', 'Bearer k1k2', 'Bearer K1', 'Bearer k']) {
    const reply = await rawRequest(manager.baseUrl, {
      method: 'POST',
      target: '/%761/tasks',
      body: submit,
      headers: { authorization },
    });
    assert.equal(reply.status, 403, `${authorization} -> ${reply.status} ${reply.body}`);
    assert.equal(JSON.parse(reply.body).error.code, 'FORBIDDEN');
  }
  assert.equal(await queue.getWaitingCount(), 0);
  for (const authorization of ['Bearer k2', 'bearer k2', 'BEARER k1']) {
    const reply = await rawRequest(manager.baseUrl, {
      method: 'GET',
      target: '/v1/queues/default',
      headers: { authorization },
    });
    assert.equal(reply.status, 200, `${authorization} -> ${reply.status} ${reply.body}`);
  }
});
