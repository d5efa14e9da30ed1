import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';

let redis: RedisServer;
let manager: TestManager;

before(async () => {
  redis = await startRedisServer();
  manager = await startTestManager({
    redisUrl: redis.url,
    prefix: uniquePrefix('auth'),
    apiKeys: ['k1', 'k2'],
  });
});
after(async () => {
  await manager?.close();
  await redis?.stop();
});

test('with JOBBERS_API_KEYS set, /v1 needs a bearer key: none is 401, a wrong one 403', async () => {
  const none = await manager.request('POST', '/v1/tasks', { task: 'example.echo', params: {} });
  assert.equal(none.status, 401);
  assert.equal(none.body.error.code, 'UNAUTHORIZED');
  const wrong = await manager.request(
    'POST',
    '/v1/tasks',
    { task: 'example.echo', params: {} },
    { authorization: 'Bearer k3' },
  );
  assert.equal(wrong.status, 403);
  const right = await manager.request(
    'POST',
    '/v1/tasks',
    { task: 'example.echo', params: {} },
    { authorization: 'Bearer k2' },
  );
  assert.equal(right.status, 201);
});

test('health stays open without a key', async () => {
  assert.equal((await manager.request('GET', '/healthz')).status, 200);
  assert.equal((await manager.request('GET', '/readyz')).status, 200);
});

test('with Redis down, submissions answer 503 REDIS_UNAVAILABLE and readiness fails', async () => {
  await redis.stop();
  const res = await manager.request(
    'POST',
    '/v1/tasks',
    { task: 'example.echo', params: {} },
    { authorization: 'Bearer k1' },
  );
  assert.equal(res.status, 503, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'REDIS_UNAVAILABLE');
  assert.equal((await manager.request('GET', '/readyz')).status, 503);
  assert.equal((await manager.request('GET', '/healthz')).status, 200);
});
