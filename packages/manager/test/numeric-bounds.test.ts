// Every numeric option of the API at each edge of its range: the highest and lowest values are
// accepted, one step beyond either is a coded 400 (never a 500 from BullMQ or a timer) and enqueues
// nothing. Single submissions and batches alike.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';

let redis: RedisServer;
let manager: TestManager;
let queue: Queue;
const prefix = uniquePrefix('bounds');

before(async () => {
  redis = await startRedisServer();
  manager = await startTestManager({ redisUrl: redis.url, prefix, bodyLimitBytes: 4 * 1024 * 1024 });
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

function assertRefused(reply: { status: number; body: any }, what: string) {
  const body = JSON.stringify(reply.body);
  assert.equal(reply.status, 400, `${what}: ${body}`);
  assert.equal(typeof reply.body?.error?.code, 'string', `${what}: ${body}`);
  assert.equal(typeof reply.body.error.message, 'string', `${what}: ${body}`);
}

/** [option, lowest accepted, highest accepted, step beyond]: each submit option's range. */
type Range = [string, (value: number) => Record<string, unknown>, number, number, number];
const submitRanges: Range[] = [
  ['priority', (v) => ({ priority: v }), 0, 2_097_151, 1],
  ['delay', (v) => ({ delay: v }), 0, 365 * 24 * 3600 * 1000, 1],
  ['retries', (v) => ({ retries: v }), 0, 100, 1],
  ['timeout', (v) => ({ timeout: v }), 0, 2 ** 31 - 1, 1],
  ['backoff.delay', (v) => ({ backoff: { type: 'fixed', delay: v } }), 0, 2 ** 31 - 1, 1],
  ['backoff.jitter', (v) => ({ backoff: { type: 'fixed', delay: 10, jitter: v } }), 0, 1, 0.001],
  ['params.ms of example.sleep', (v) => ({ task: 'example.sleep', params: { ms: v } }), 0, 3_600_000, 1],
];

describe('submit options at their edges', () => {
  for (const [name, options, min, max, step] of submitRanges) {
    for (const [value, accepted] of [
      [min, true],
      [max, true],
      [min - step, false],
      [max + step, false],
    ] as const) {
      test(`${name} ${value} is ${accepted ? 'accepted' : 'a coded 400'}, single and batch`, async () => {
        const task = { task: 'example.echo', params: {}, delay: 60_000, ...options(value) };
        const queuedBefore = await queuedJobs();
        const single = await manager.request('POST', '/v1/tasks', task);
        const batch = await manager.request('POST', '/v1/tasks/batch', { tasks: [task, task] });
        if (accepted) {
          assert.equal(single.status, 201, JSON.stringify(single.body));
          assert.equal(batch.status, 201, JSON.stringify(batch.body));
          assert.equal(await queuedJobs(), queuedBefore + 3);
        } else {
          assertRefused(single, 'single');
          assertRefused(batch, 'batch');
          assert.equal(await queuedJobs(), queuedBefore);
        }
      });
    }
  }
});

describe('sizes and limits at their edges', () => {
  const sleeper = { task: 'example.sleep', params: { ms: 1 }, delay: 60_000 };

  test('a batch holds 1 to 1000 tasks', async () => {
    const queuedBefore = await queuedJobs();
    assert.equal((await manager.request('POST', '/v1/tasks/batch', { tasks: [sleeper] })).status, 201);
    const full = await manager.request('POST', '/v1/tasks/batch', { tasks: Array(1000).fill(sleeper) });
    assert.equal(full.status, 201, JSON.stringify(full.body).slice(0, 500));
    assert.equal(await queuedJobs(), queuedBefore + 1001);
    assertRefused(await manager.request('POST', '/v1/tasks/batch', { tasks: [] }), 'empty batch');
    assertRefused(
      await manager.request('POST', '/v1/tasks/batch', { tasks: Array(1001).fill(sleeper) }),
      '1001 tasks',
    );
    assert.equal(await queuedJobs(), queuedBefore + 1001);
  });

  test('GET /v1/tasks limit is 1 to 500', async () => {
    for (const limit of [1, 500]) {
      const res = await manager.request('GET', `/v1/tasks?limit=${limit}`);
      assert.equal(res.status, 200, `limit=${limit}: ${JSON.stringify(res.body).slice(0, 300)}`);
      assert.ok(res.body.tasks.length <= limit);
    }
    for (const limit of [0, 501])
      assertRefused(await manager.request('GET', `/v1/tasks?limit=${limit}`), `${limit}`);
  });

  test('POST /v1/tasks/retry limit is 1 to 10000', async () => {
    for (const limit of [1, 10_000]) {
      const res = await manager.request('POST', '/v1/tasks/retry', { all: true, limit });
      assert.equal(res.status, 200, `limit ${limit}: ${JSON.stringify(res.body)}`);
    }
    for (const limit of [0, 10_001]) {
      assertRefused(await manager.request('POST', '/v1/tasks/retry', { all: true, limit }), `limit ${limit}`);
    }
  });
});
