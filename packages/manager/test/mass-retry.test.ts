// POST /v1/tasks/retry resolves incidents in bulk: 500 incidents of example.flaky run again on a real
// worker and complete, the limit and the filters are honoured, another task type's incidents are left
// alone, and bad filters retry nothing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import type { RunningProcess } from '../../../test/support/processes.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';
import { clusterMetric, startWorker, transitions } from './support/tasks.js';

let redis: RedisServer;
let manager: TestManager;
let worker: RunningProcess;
let prefix: string;
let submittedAt: { first: number; last: number };
const flaky = 'example.flaky';
const sleep = 'example.sleep';

async function counts(): Promise<Record<string, number>> {
  const res = await manager.request('GET', '/v1/queues/default');
  return res.body.counts;
}

function countsReach(expected: Record<string, number>, what: string) {
  return waitFor(
    async () => {
      const now = await counts();
      return Object.entries(expected).every(([state, n]) => now[state] === n) ? now : undefined;
    },
    { timeoutMs: 30_000, what },
  );
}

async function listAll(query: string): Promise<any[]> {
  const tasks: any[] = [];
  let cursor: string | undefined;
  do {
    const res = await manager.request(
      'GET',
      `/v1/tasks?${query}&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    tasks.push(...res.body.tasks);
    cursor = res.body.nextCursor;
  } while (cursor);
  return tasks;
}

before(async () => {
  redis = await startRedisServer();
  prefix = uniquePrefix('massretry');
  manager = await startTestManager({ redisUrl: redis.url, prefix, exporter: true });
  await manager.exporter!.waitUntilReady();
  worker = await startWorker(redis.url, prefix, { WORKER_CONCURRENT_TASKS: '50' });
  // 500 incidents of example.flaky (fails on attempt 1, no retries) and 20 of example.sleep (times out).
  const first = Date.now();
  const flakyBatch = await manager.request('POST', '/v1/tasks/batch', {
    tasks: Array.from({ length: 500 }, () => ({ task: flaky, params: { failTimes: 1 }, retries: 0 })),
  });
  assert.equal(flakyBatch.status, 201);
  const sleepBatch = await manager.request('POST', '/v1/tasks/batch', {
    tasks: Array.from({ length: 20 }, () => ({
      task: sleep,
      params: { ms: 60_000 },
      timeout: 20,
      retries: 0,
    })),
  });
  assert.equal(sleepBatch.status, 201);
  submittedAt = { first, last: Date.now() };
  await countsReach({ failed: 520 }, '520 incidents');
});
after(async () => {
  await worker?.stop();
  await manager?.close();
  await redis?.stop();
});

test('bad filters are a 400 and retry nothing', async () => {
  const bad: [unknown, string][] = [
    [{ task: 'example.nope' }, 'UNKNOWN_TASK_TYPE'],
    [{ queue: 'nope' }, 'UNKNOWN_QUEUE'],
    [{ before: 'last tuesday' }, 'INVALID_FILTER'],
    [{ after: '2025-02-01T00:00:00Z', before: '2025-01-01T00:00:00Z' }, 'INVALID_FILTER'],
    [{ limit: 0 }, 'VALIDATION_FAILED'],
    [{ limit: 10_001 }, 'VALIDATION_FAILED'],
    [{ task: flaky, state: 'failed' }, 'VALIDATION_FAILED'],
  ];
  for (const [body, code] of bad) {
    const res = await manager.request('POST', '/v1/tasks/retry', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(res.body.error.code, code, JSON.stringify(res.body));
  }
  assert.equal((await counts()).failed, 520);
  assert.equal(await transitions(manager, prefix, flaky, 'incident-resolved'), 0);
});

test('time filters select by submission time', async () => {
  const beforeAll = new Date(submittedAt.first - 60_000).toISOString();
  const afterAll = new Date(submittedAt.last + 60_000).toISOString();
  for (const body of [{ before: beforeAll }, { after: afterAll }]) {
    const res = await manager.request('POST', '/v1/tasks/retry', body);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { retried: 0, matched: 0, more: false });
  }
  assert.equal((await counts()).failed, 520);
});

test('the limit is honoured, then the rest of the 500 are retried and all complete on attempt 2', async () => {
  const firstRun = await manager.request('POST', '/v1/tasks/retry', { task: flaky, limit: 100 });
  assert.equal(firstRun.status, 200, JSON.stringify(firstRun.body));
  assert.deepEqual(firstRun.body, { retried: 100, matched: 100, more: true });
  await countsReach({ completed: 100, failed: 420 }, '100 retried incidents to complete');

  const window = {
    after: new Date(submittedAt.first).toISOString(),
    before: new Date(submittedAt.last + 1).toISOString(),
  };
  const rest = await manager.request('POST', '/v1/tasks/retry', { task: flaky, queue: 'default', ...window });
  assert.equal(rest.status, 200);
  assert.deepEqual(rest.body, { retried: 400, matched: 400, more: false });
  await countsReach({ completed: 500, failed: 20 }, 'all 500 flaky tasks to complete');

  const completed = await listAll(`state=completed&task=${flaky}`);
  assert.equal(completed.length, 500);
  assert.ok(completed.every((t) => t.result?.attempt === 2 && t.attempts === 2));
  assert.equal(await transitions(manager, prefix, flaky, 'incident-raised'), 500);
  assert.equal(await transitions(manager, prefix, flaky, 'incident-resolved'), 500);
  assert.equal(await clusterMetric(manager, prefix, 'jobbers_incidents', { task: flaky }), 0);

  const untouched = await listAll('state=failed');
  assert.equal(untouched.length, 20);
  assert.ok(untouched.every((t) => t.task === sleep && t.attempts === 1));
  assert.equal(await transitions(manager, prefix, sleep, 'incident-resolved'), 0);
  assert.equal(await clusterMetric(manager, prefix, 'jobbers_incidents', { task: sleep }), 20);
});

test('retrying by task type: the sleep incidents run once more, time out again and are incidents again', async () => {
  const res = await manager.request('POST', '/v1/tasks/retry', { task: sleep });
  assert.deepEqual(res.body, { retried: 20, matched: 20, more: false });
  // Each runs once more, times out again and is an incident again, on attempt 2.
  await waitFor(
    async () => {
      const failed = await listAll(`state=failed&task=${sleep}`);
      return failed.length === 20 && failed.every((t) => t.attempts === 2);
    },
    { timeoutMs: 15_000, what: 'the sleep tasks to fail again' },
  );
  assert.equal(await transitions(manager, prefix, sleep, 'incident-resolved'), 20);
  assert.equal(await transitions(manager, prefix, sleep, 'incident-raised'), 40);
});
