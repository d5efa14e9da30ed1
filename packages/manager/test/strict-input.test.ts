// The API's edge is strict: bodies are not type-coerced, numbers stay within what BullMQ and timers
// hold, ids the submit accepts work everywhere, and every error, whatever raised it, is the coded
// `{error: {code, message}}` body without stacks or server paths. Bad input enqueues nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Queue } from 'bullmq';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { rawRequest } from '../../../test/support/raw-http.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';

let redis: RedisServer;
let manager: TestManager;
let queue: Queue;
const prefix = uniquePrefix('strict');

before(async () => {
  redis = await startRedisServer();
  manager = await startTestManager({
    redisUrl: redis.url,
    prefix,
    bodyLimitBytes: 4 * 1024 * 1024,
    extra: {
      availableByTask: async () => {
        throw new Error(`boom at ${import.meta.filename}`);
      },
    },
  });
  queue = new Queue('default', { connection: manager.connection, prefix });
});
after(async () => {
  await queue?.close();
  await manager?.close();
  await redis?.stop();
});

async function queuedJobs(): Promise<number> {
  const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed');
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

function assertCodedError(reply: { status: number; body: any }, status: number, code?: string) {
  const what = JSON.stringify(reply.body);
  assert.equal(reply.status, status, what);
  assert.equal(typeof reply.body?.error?.code, 'string', what);
  assert.equal(typeof reply.body.error.message, 'string', what);
  if (code) assert.equal(reply.body.error.code, code, what);
  assert.doesNotMatch(what, /\/work\/|node_modules|\n\s+at |\\n\s+at /, 'no stack trace or server path');
}

describe('submission bodies are not coerced', () => {
  const echo = { task: 'example.echo', params: {} };
  for (const wrong of [
    { priority: true },
    { priority: '5' },
    { id: true },
    { id: 12345678 },
    { delay: '5' },
    { retries: [5] },
    { retries: '2' },
    { timeout: '100' },
    { task: ['example.echo'] },
    { backoff: { type: 'fixed', delay: '100' } },
  ]) {
    test(`${JSON.stringify(wrong)} is 400 and enqueues nothing`, async () => {
      assertCodedError(
        await manager.request('POST', '/v1/tasks', { ...echo, ...wrong }),
        400,
        'VALIDATION_FAILED',
      );
      assertCodedError(
        await manager.request('POST', '/v1/tasks/batch', { tasks: [{ ...echo, ...wrong }] }),
        400,
        'VALIDATION_FAILED',
      );
      assert.equal(await queuedJobs(), 0);
    });
  }

  test('params null is checked against the task schema as sent, not read as {}', async () => {
    const nulled = { task: 'example.echo', params: null };
    assertCodedError(await manager.request('POST', '/v1/tasks', nulled), 400, 'INVALID_PARAMS');
    assertCodedError(
      await manager.request('POST', '/v1/tasks/batch', { tasks: [nulled] }),
      400,
      'INVALID_PARAMS',
    );
    assert.equal(await queuedJobs(), 0);
  });

  test('querystrings still read numbers: limit=5', async () => {
    const res = await manager.request('GET', '/v1/tasks?limit=5&state=waiting');
    assert.equal(res.status, 200, JSON.stringify(res.body));
  });
});

describe('numbers stay within what timers and BullMQ hold', () => {
  const cases: [Record<string, number>, number][] = [
    [{ timeout: 2 ** 31 }, 400],
    [{ timeout: 2 ** 31 - 1 }, 201],
    [{ delay: 365 * 24 * 3600 * 1000 + 1 }, 400],
    [{ delay: 365 * 24 * 3600 * 1000 }, 201],
    [{ priority: 2_097_152 }, 400],
    [{ priority: 2_097_151 }, 201],
  ];
  for (const [options, status] of cases) {
    test(`${JSON.stringify(options)} answers ${status}`, async () => {
      const res = await manager.request('POST', '/v1/tasks', {
        task: 'example.echo',
        params: {},
        ...options,
      });
      if (status === 201) assert.equal(res.status, 201, JSON.stringify(res.body));
      else assertCodedError(res, status, 'VALIDATION_FAILED');
    });
  }
  test('a backoff delay beyond a timer is 400', async () => {
    const res = await manager.request('POST', '/v1/tasks', {
      task: 'example.echo',
      params: {},
      backoff: { type: 'fixed', delay: 2 ** 31 },
    });
    assertCodedError(res, 400);
  });
});

describe('ids', () => {
  test('an id of the longest length works for submit, GET, cancel and retry', async () => {
    const id = `x${'y'.repeat(127)}`;
    assert.equal(
      (await manager.request('POST', '/v1/tasks', { task: 'example.echo', id, delay: 60_000 })).status,
      201,
    );
    assert.equal((await manager.request('GET', `/v1/tasks/${id}`)).status, 200);
    assertCodedError(await manager.request('POST', `/v1/tasks/${id}/retry`), 409, 'TASK_STATE_CONFLICT');
    assert.equal((await manager.request('POST', `/v1/tasks/${id}/cancel`)).status, 200);
  });

  test('one character more is 400 everywhere, never 414', async () => {
    const id = `x${'y'.repeat(128)}`;
    assertCodedError(await manager.request('POST', '/v1/tasks', { task: 'example.echo', id }), 400);
    assertCodedError(await manager.request('GET', `/v1/tasks/${id}`), 400);
    assertCodedError(await manager.request('POST', `/v1/tasks/${id}/cancel`), 400);
    assertCodedError(await manager.request('POST', `/v1/tasks/${id}/retry`), 400);
  });

  test('a path parameter far beyond any id is a coded 414', async () => {
    assertCodedError(await manager.request('GET', `/v1/tasks/${'z'.repeat(2000)}`), 414, 'URI_TOO_LONG');
  });
});

describe('every error has the coded body', () => {
  test('deeply nested params are 400, not 500', async () => {
    const deep = `${'{"a":'.repeat(4000)}1${'}'.repeat(4000)}`;
    const before = await queuedJobs();
    assertCodedError(
      await manager.request('POST', '/v1/tasks', `{"task":"example.echo","params":${deep}}`),
      400,
      'VALIDATION_FAILED',
    );
    assert.equal(await queuedJobs(), before);
  });

  test('an unknown route is 404 ROUTE_NOT_FOUND', async () => {
    assertCodedError(await manager.request('GET', '/v2/nothing'), 404, 'ROUTE_NOT_FOUND');
    assertCodedError(await manager.request('GET', '/v1/nothing'), 404, 'ROUTE_NOT_FOUND');
  });

  test('a wrong method on a known path is 405 with Allow', async () => {
    for (const [method, target, allow] of [
      ['DELETE', '/v1/tasks', 'GET, POST'],
      ['PUT', '/v1/tasks/abc', 'GET'],
      ['GET', '/v1/queues/default/pause', 'POST'],
      ['POST', '/v1/queues', 'GET'],
    ] as const) {
      const reply = await rawRequest(manager.baseUrl, { method, target });
      assert.equal(reply.status, 405, `${method} ${target}: ${reply.body}`);
      assert.match(reply.headers, new RegExp(`\\r\\nallow: ${allow}`, 'i'));
      assert.equal(JSON.parse(reply.body).error.code, 'METHOD_NOT_ALLOWED');
    }
  });

  test('a gzip body is 415', async () => {
    const reply = await rawRequest(manager.baseUrl, {
      method: 'POST',
      target: '/v1/tasks',
      headers: { 'content-encoding': 'gzip', 'content-type': 'application/json' },
      body: gzipSync(JSON.stringify({ task: 'example.echo', params: {} })).toString('latin1'),
    });
    assert.equal(reply.status, 415, reply.body);
    assert.equal(JSON.parse(reply.body).error.code, 'UNSUPPORTED_MEDIA_TYPE');
  });

  test('a GET with a Content-Encoding is answered as usual: its body is never read', async () => {
    const reply = await rawRequest(manager.baseUrl, {
      method: 'GET',
      target: '/v1/tasks?limit=1',
      headers: { 'content-encoding': 'gzip' },
    });
    assert.equal(reply.status, 200, reply.body);
  });

  test('an internal error is 500 INTERNAL without its message or stack', async () => {
    // This manager's reader of available jobs throws an Error naming this file.
    assertCodedError(await manager.request('GET', '/v1/queues/default'), 500, 'INTERNAL');
  });

  test('a malformed URL is a coded 400', async () => {
    const reply = await rawRequest(manager.baseUrl, { method: 'GET', target: '/v1/tasks/%E0%A4%A' });
    assert.equal(reply.status, 400, reply.body);
    assert.ok(JSON.parse(reply.body).error.code);
  });
});

describe('validation messages and filters', () => {
  test('state=bogus names the allowed values once', async () => {
    const res = await manager.request('GET', '/v1/tasks?state=bogus');
    assertCodedError(res, 400, 'VALIDATION_FAILED');
    assert.match(
      res.body.error.message,
      /state must be one of: waiting, prioritized, delayed, active, completed, failed/,
    );
    assert.doesNotMatch(res.body.error.message, /constant/);
  });

  test('mass retry needs a filter or "all": true', async () => {
    assertCodedError(await manager.request('POST', '/v1/tasks/retry', {}), 400, 'VALIDATION_FAILED');
    assertCodedError(
      await manager.request('POST', '/v1/tasks/retry', { limit: 5 }),
      400,
      'VALIDATION_FAILED',
    );
    assertCodedError(
      await manager.request('POST', '/v1/tasks/retry', { all: false }),
      400,
      'VALIDATION_FAILED',
    );
    assert.equal((await manager.request('POST', '/v1/tasks/retry', { all: true })).status, 200);
    assert.equal((await manager.request('POST', '/v1/tasks/retry', { queue: 'default' })).status, 200);
  });

  test('listings leave out large params unless asked for with full=true', async () => {
    const big = { blob: 'b'.repeat(200_000) };
    const submitted = await manager.request('POST', '/v1/tasks', {
      task: 'example.echo',
      params: big,
      delay: 60_000,
    });
    assert.equal(submitted.status, 201);
    const small = await manager.request('POST', '/v1/tasks', {
      task: 'example.echo',
      params: { a: 1 },
      delay: 60_000,
    });
    const page = await manager.request('GET', '/v1/tasks?state=delayed&limit=500');
    const listed = page.body.tasks.find((t: any) => t.id === submitted.body.id);
    assert.equal(listed.params, undefined);
    assert.deepEqual(listed.omitted, ['params']);
    assert.deepEqual(page.body.tasks.find((t: any) => t.id === small.body.id).params, { a: 1 });
    const full = await manager.request('GET', '/v1/tasks?state=delayed&limit=500&full=true');
    assert.deepEqual(full.body.tasks.find((t: any) => t.id === submitted.body.id).params, big);
    assert.deepEqual((await manager.request('GET', `/v1/tasks/${submitted.body.id}`)).body.params, big);
  });
});
