import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';

let redis: RedisServer;
let manager: TestManager;
let prefix: string;

async function queuedJobs(): Promise<number> {
  const queue = new Queue('default', { connection: manager.connection, prefix });
  const counts = await queue.getJobCounts(
    'waiting',
    'prioritized',
    'delayed',
    'active',
    'completed',
    'failed',
  );
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

before(async () => {
  redis = await startRedisServer();
  prefix = uniquePrefix('api');
  manager = await startTestManager({ redisUrl: redis.url, prefix, bodyLimitBytes: 4096 });
});
after(async () => {
  await manager?.close();
  await redis?.stop();
});

describe('POST /v1/tasks', () => {
  test('creates a task and answers 201 with its id, type, queue and state', async () => {
    const res = await manager.request('POST', '/v1/tasks', {
      task: 'example.echo',
      params: { hello: 'world' },
    });
    assert.equal(res.status, 201);
    assert.match(res.body.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.deepEqual(
      { ...res.body, id: undefined },
      { id: undefined, task: 'example.echo', queue: 'default', state: 'waiting' },
    );
    const read = await manager.request('GET', `/v1/tasks/${res.body.id}`);
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.params, { hello: 'world' });
    assert.equal(read.body.state, 'waiting');
    assert.equal(read.body.attempts, 0);
  });

  test('a delayed submission is delayed, a prioritized one prioritized', async () => {
    const delayed = await manager.request('POST', '/v1/tasks', {
      task: 'example.echo',
      params: {},
      delay: 60_000,
    });
    assert.equal(delayed.body.state, 'delayed');
    const prioritized = await manager.request('POST', '/v1/tasks', {
      task: 'example.echo',
      params: {},
      priority: 3,
    });
    assert.equal(prioritized.body.state, 'prioritized');
  });

  test('resubmitting the same id returns the existing task with 200 and enqueues nothing', async () => {
    const first = await manager.request('POST', '/v1/tasks', {
      task: 'example.echo',
      params: { n: 1 },
      id: 'order-1001',
    });
    assert.equal(first.status, 201);
    const before = await queuedJobs();
    const again = await manager.request('POST', '/v1/tasks', {
      task: 'example.echo',
      params: { n: 2 },
      id: 'order-1001',
    });
    assert.equal(again.status, 200);
    assert.equal(again.body.id, 'order-1001');
    assert.equal(await queuedJobs(), before);
    const read = await manager.request('GET', '/v1/tasks/order-1001');
    assert.deepEqual(read.body.params, { n: 1 });
  });

  test('reusing an id for another task type is a 409', async () => {
    await manager.request('POST', '/v1/tasks', { task: 'example.echo', params: {}, id: 'shared-id' });
    const res = await manager.request('POST', '/v1/tasks', {
      task: 'example.sleep',
      params: { ms: 1 },
      id: 'shared-id',
    });
    assert.equal(res.status, 409);
    assert.equal(res.body.error.code, 'TASK_ID_CONFLICT');
  });

  const badRequests: [string, unknown, number, string][] = [
    ['an unknown task type', { task: 'example.nope', params: {} }, 400, 'UNKNOWN_TASK_TYPE'],
    [
      'params that break the schema',
      { task: 'example.sleep', params: { ms: 'soon' } },
      400,
      'INVALID_PARAMS',
    ],
    ['missing required params', { task: 'example.sleep', params: {} }, 400, 'INVALID_PARAMS'],
    [
      'a queue the task does not allow',
      { task: 'example.echo', params: {}, queue: 'images' },
      400,
      'QUEUE_NOT_ALLOWED',
    ],
    ['an invalid id', { task: 'example.echo', params: {}, id: 'bad id' }, 400, 'INVALID_TASK_ID'],
    ['a negative delay', { task: 'example.echo', params: {}, delay: -5 }, 400, 'VALIDATION_FAILED'],
    ['too many retries', { task: 'example.echo', params: {}, retries: 1000 }, 400, 'VALIDATION_FAILED'],
    ['an unknown field', { task: 'example.echo', params: {}, colour: 'red' }, 400, 'VALIDATION_FAILED'],
    ['no task at all', { params: {} }, 400, 'VALIDATION_FAILED'],
    ['malformed JSON', '{"task": "example.echo",', 400, 'INVALID_JSON'],
  ];
  for (const [what, body, status, code] of badRequests) {
    test(`rejects ${what} with ${status} ${code} and enqueues nothing`, async () => {
      const before = await queuedJobs();
      const res = await manager.request('POST', '/v1/tasks', body);
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.error.code, code);
      assert.equal(typeof res.body.error.message, 'string');
      assert.equal(await queuedJobs(), before);
    });
  }

  test('a body over the limit is a 413 and enqueues nothing', async () => {
    const before = await queuedJobs();
    const res = await manager.request('POST', '/v1/tasks', {
      task: 'example.echo',
      params: { blob: 'x'.repeat(10_000) },
    });
    assert.equal(res.status, 413);
    assert.equal(res.body.error.code, 'BODY_TOO_LARGE');
    assert.equal(await queuedJobs(), before);
  });

  test('a body that is not JSON is a 415', async () => {
    const res = await manager.request('POST', '/v1/tasks', 'task=example.echo', {
      'content-type': 'text/plain',
    });
    assert.equal(res.status, 415);
    assert.equal(res.body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('POST /v1/tasks/batch', () => {
  test('creates every task of a valid batch', async () => {
    const res = await manager.request('POST', '/v1/tasks/batch', {
      tasks: [
        { task: 'example.echo', params: { i: 1 } },
        { task: 'example.sleep', params: { ms: 5 } },
      ],
    });
    assert.equal(res.status, 201);
    assert.equal(res.body.tasks.length, 2);
    assert.ok(res.body.tasks.every((t: { created: boolean }) => t.created));
  });

  test('one invalid task rejects the whole batch, naming its index, and enqueues nothing', async () => {
    const before = await queuedJobs();
    const res = await manager.request('POST', '/v1/tasks/batch', {
      tasks: [
        { task: 'example.echo', params: {} },
        { task: 'example.sleep', params: { ms: -1 } },
      ],
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'VALIDATION_FAILED');
    assert.equal(res.body.error.details[0].index, 1);
    assert.equal(res.body.error.details[0].code, 'INVALID_PARAMS');
    assert.equal(await queuedJobs(), before);
  });
});

describe('reading', () => {
  test('an unknown task id is a 404', async () => {
    const res = await manager.request('GET', '/v1/tasks/01J00000000000000000000000');
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'TASK_NOT_FOUND');
  });

  test('GET /v1/queues and /v1/queues/:queue count states and available jobs per task', async () => {
    const list = await manager.request('GET', '/v1/queues');
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.queues.map((q: { name: string }) => q.name),
      ['default'],
    );
    const one = await manager.request('GET', '/v1/queues/default');
    assert.equal(one.status, 200);
    assert.ok(one.body.counts.waiting >= 1);
    assert.ok(one.body.available['example.echo'] >= 1);
    assert.equal(one.body.available['example.heartbeat'], 0);
    const missing = await manager.request('GET', '/v1/queues/nope');
    assert.equal(missing.status, 404);
  });

  test('OpenAPI docs are served', async () => {
    const res = await manager.request('GET', '/docs/json');
    assert.equal(res.status, 200);
    assert.ok(res.body.paths['/v1/tasks']);
  });
});
