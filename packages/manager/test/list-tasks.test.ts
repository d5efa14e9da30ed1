// GET /v1/tasks: paging with a cursor returns each task exactly once, filters combine, pages stay
// bounded on big sets, and bad parameters are a 400.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createRedisConnection } from '@jobbers/core';
import { type Job, Queue, Worker } from 'bullmq';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';

let redis: RedisServer;

before(async () => {
  redis = await startRedisServer();
});
after(async () => {
  await redis?.stop();
});

interface Setup {
  manager: TestManager;
  queue: Queue;
  worker: Worker;
  close(): Promise<void>;
}

async function setup(): Promise<Setup> {
  const prefix = uniquePrefix('list');
  const manager = await startTestManager({ redisUrl: redis.url, prefix });
  const queue = new Queue('default', { connection: manager.connection, prefix });
  // A worker without a processor: the test moves jobs to active, completed and failed itself.
  const blocking = createRedisConnection(redis.url, { blocking: true });
  const worker = new Worker('default', null, { connection: blocking, prefix });
  return {
    manager,
    queue,
    worker,
    close: async () => {
      await worker.close(true);
      blocking.disconnect();
      await queue.close();
      await manager.close();
    },
  };
}

/** Adds jobs the way TaskClient does, with a chosen submission time. */
async function addJobs(queue: Queue, task: string, count: number, timestamp = Date.now()): Promise<string[]> {
  const jobs = await queue.addBulk(
    Array.from({ length: count }, () => ({
      name: task,
      data: { params: task === 'example.sleep' ? { ms: 1 } : {} },
      opts: { jobId: `t-${randomUUID()}`, timestamp, removeOnComplete: false, removeOnFail: false },
    })),
  );
  return jobs.map((j) => j.id!);
}

/** Activates every waiting job and finishes it as `outcome`. */
async function finishAll(worker: Worker, outcome: 'completed' | 'failed'): Promise<void> {
  for (;;) {
    const token = randomUUID();
    const job = (await worker.getNextJob(token, { block: false })) as Job | undefined;
    if (!job) return;
    if (outcome === 'completed') await job.moveToCompleted({ ok: true }, token, false);
    else await job.moveToFailed(new Error('boom'), token, false);
  }
}

/** Follows nextCursor to the end; returns every id seen (with repeats) and the pages' sizes. */
async function readAll(
  manager: TestManager,
  query: string,
  from?: string,
): Promise<{ ids: string[]; pages: number[] }> {
  const ids: string[] = [];
  const pages: number[] = [];
  let cursor = from;
  for (let page = 0; page < 1000; page++) {
    const path = `/v1/tasks?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await manager.request('GET', path);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    ids.push(...res.body.tasks.map((t: { id: string }) => t.id));
    pages.push(res.body.tasks.length);
    cursor = res.body.nextCursor;
    if (!cursor) return { ids, pages };
  }
  throw new Error('paging did not end');
}

describe('GET /v1/tasks', () => {
  let s: Setup;
  const ids: Record<string, string[]> = {};
  const t0 = Date.parse('2025-03-01T00:00:00Z');
  const hour = 3600_000;

  before(async () => {
    s = await setup();
    // 40 failed echo (submitted at t0), 30 completed sleep (t0 + 1h), 25 waiting echo (t0 + 2h),
    // 5 prioritized and 5 delayed echo (now) and one active sleep.
    ids.failed = await addJobs(s.queue, 'example.echo', 40, t0);
    await finishAll(s.worker, 'failed');
    ids.completed = await addJobs(s.queue, 'example.sleep', 30, t0 + hour);
    await finishAll(s.worker, 'completed');
    ids.active = await addJobs(s.queue, 'example.sleep', 1);
    assert.ok(await s.worker.getNextJob(randomUUID(), { block: false }));
    ids.waiting = await addJobs(s.queue, 'example.echo', 25, t0 + 2 * hour);
    ids.prioritized = [];
    ids.delayed = [];
    for (let i = 0; i < 5; i++) {
      const p = await s.manager.request('POST', '/v1/tasks', { task: 'example.echo', priority: i + 1 });
      ids.prioritized.push(p.body.id);
      const d = await s.manager.request('POST', '/v1/tasks', { task: 'example.echo', delay: 60_000 + i });
      ids.delayed.push(d.body.id);
    }
  });
  after(() => s?.close());

  test('paging through every state returns each task exactly once, in state order', async () => {
    const all = Object.values(ids).flat();
    const { ids: seen, pages } = await readAll(s.manager, 'limit=7');
    assert.equal(seen.length, all.length, 'no task repeated or missed');
    assert.deepEqual(new Set(seen), new Set(all));
    assert.ok(
      pages.slice(0, -1).every((n) => n === 7),
      `full pages until the last: ${pages}`,
    );
    const order = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'];
    const stateOf = (id: string) => order.find((state) => ids[state]!.includes(id))!;
    const states = seen.map(stateOf);
    assert.deepEqual(
      states,
      [...states].sort((a, b) => order.indexOf(a) - order.indexOf(b)),
    );
  });

  test('each page holds full task views with the state they were found in', async () => {
    const res = await s.manager.request('GET', '/v1/tasks?state=failed&limit=3');
    assert.equal(res.status, 200);
    assert.equal(res.body.tasks.length, 3);
    for (const task of res.body.tasks) {
      assert.equal(task.state, 'failed');
      assert.equal(task.task, 'example.echo');
      assert.equal(task.queue, 'default');
      assert.equal(task.error.message, 'boom');
      assert.equal(task.attempts, 1);
      assert.equal(task.createdAt, new Date(t0).toISOString());
    }
    const prioritized = await s.manager.request('GET', '/v1/tasks?state=prioritized');
    assert.deepEqual(
      prioritized.body.tasks.map((t: { priority: number }) => t.priority),
      [1, 2, 3, 4, 5],
      'prioritized in the order they will run',
    );
    assert.equal(prioritized.body.nextCursor, undefined);
  });

  test('filters combine: state, task, queue and submission time', async () => {
    const byState = await readAll(s.manager, 'state=completed&limit=8');
    assert.deepEqual(new Set(byState.ids), new Set(ids.completed));
    assert.equal(byState.ids.length, 30);

    const echoFailed = await readAll(s.manager, 'state=failed&task=example.echo&queue=default&limit=500');
    assert.deepEqual(new Set(echoFailed.ids), new Set(ids.failed));
    const sleepFailed = await s.manager.request('GET', '/v1/tasks?state=failed&task=example.sleep');
    assert.deepEqual(sleepFailed.body, { tasks: [] });

    const sleepAnyState = await readAll(s.manager, 'task=example.sleep&limit=500');
    assert.deepEqual(new Set(sleepAnyState.ids), new Set([...ids.completed!, ...ids.active!]));

    const iso = (ms: number) => encodeURIComponent(new Date(ms).toISOString());
    const window = await readAll(s.manager, `after=${iso(t0 + hour)}&before=${iso(t0 + 2 * hour)}&limit=4`);
    assert.deepEqual(new Set(window.ids), new Set(ids.completed), 'after is inclusive, before exclusive');
    const echoBefore = await readAll(s.manager, `task=example.echo&before=${iso(t0 + 3 * hour)}&limit=500`);
    assert.deepEqual(new Set(echoBefore.ids), new Set([...ids.failed!, ...ids.waiting!]));
    const failedAfter = await s.manager.request('GET', `/v1/tasks?state=failed&after=${iso(t0 + 1)}`);
    assert.deepEqual(failedAfter.body, { tasks: [] }, 'the finished set stops at `after`');
  });

  test('a task removed between pages neither repeats nor skips another', async () => {
    const first = await s.manager.request('GET', '/v1/tasks?state=failed&limit=10');
    const page1 = first.body.tasks.map((t: { id: string }) => t.id);
    const { ids: everything } = await readAll(s.manager, 'state=failed&limit=500');
    assert.deepEqual(everything.slice(0, 10), page1);
    // Remove the page's last task (the cursor's anchor) and a task already seen.
    await s.queue.remove(page1[9]);
    await s.queue.remove(page1[0]);
    ids.failed = ids.failed!.filter((id) => id !== page1[9] && id !== page1[0]);
    const rest = await readAll(s.manager, 'state=failed&limit=10', first.body.nextCursor);
    assert.deepEqual(rest.ids, everything.slice(10));
  });

  const bad: [string, string, string][] = [
    ['an unknown queue', 'queue=nope', 'UNKNOWN_QUEUE'],
    ['an unknown task type', 'task=example.nope', 'UNKNOWN_TASK_TYPE'],
    ['an unknown state', 'state=paused', 'VALIDATION_FAILED'],
    ['a date that is not ISO', 'before=yesterday', 'INVALID_FILTER'],
    ['an impossible date', 'after=2025-13-45T00:00:00Z', 'INVALID_FILTER'],
    ['a date without a time (not an RFC 3339 date-time)', 'before=2025-01-31', 'INVALID_FILTER'],
    ['a time without a zone', 'after=2025-01-31T12:00:00', 'INVALID_FILTER'],
    ['after not before before', 'after=2025-02-01T00:00:00Z&before=2025-01-01T00:00:00Z', 'INVALID_FILTER'],
    ['a limit of 0', 'limit=0', 'VALIDATION_FAILED'],
    ['a limit over 500', 'limit=501', 'VALIDATION_FAILED'],
    ['a limit that is no number', 'limit=ten', 'VALIDATION_FAILED'],
    ['a cursor that is not one', 'cursor=bm90LWEtY3Vyc29y', 'INVALID_CURSOR'],
    ['garbage as a cursor', 'cursor=%25%25%25', 'INVALID_CURSOR'],
    ['an unknown parameter', 'status=failed', 'VALIDATION_FAILED'],
  ];
  for (const [what, query, code] of bad) {
    test(`rejects ${what} with 400 ${code}`, async () => {
      const res = await s.manager.request('GET', `/v1/tasks?${query}`);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, code);
    });
  }

  test('a cursor is tied to its query: reused with other filters it is a 400', async () => {
    const page = await s.manager.request('GET', '/v1/tasks?state=failed&limit=2');
    const cursor = encodeURIComponent(page.body.nextCursor);
    const other = await s.manager.request('GET', `/v1/tasks?state=completed&limit=2&cursor=${cursor}`);
    assert.equal(other.status, 400);
    assert.equal(other.body.error.code, 'INVALID_CURSOR');
    const sameFilters = await s.manager.request('GET', `/v1/tasks?state=failed&limit=5&cursor=${cursor}`);
    assert.equal(sameFilters.status, 200, 'the page size may change between pages');
  });

  test('a cursor edited by hand is a 400 INVALID_CURSOR, never a 500', async () => {
    const edit = (cursor: string, change: Record<string, unknown>) =>
      encodeURIComponent(
        Buffer.from(
          JSON.stringify({ ...JSON.parse(Buffer.from(cursor, 'base64url').toString()), ...change }),
        ).toString('base64url'),
      );
    const waiting = (await s.manager.request('GET', '/v1/tasks?state=waiting&limit=1')).body.nextCursor;
    const failed = (await s.manager.request('GET', '/v1/tasks?state=failed&limit=1')).body.nextCursor;
    const edits: [string, string][] = [
      ['waiting', edit(waiting, { o: 1e21 })],
      ['waiting', edit(waiting, { o: 2 ** 53 })],
      ['failed', edit(failed, { sc: ' ' })],
      ['failed', edit(failed, { sc: '' })],
      ['failed', edit(failed, { sc: '1e400' })],
    ];
    for (const [state, cursor] of edits) {
      const res = await s.manager.request('GET', `/v1/tasks?state=${state}&limit=1&cursor=${cursor}`);
      assert.equal(
        res.status,
        400,
        `${Buffer.from(decodeURIComponent(cursor), 'base64url')}: ${JSON.stringify(res.body)}`,
      );
      assert.equal(res.body.error.code, 'INVALID_CURSOR');
    }
  });
});

test('a page examines a bounded number of entries: a rare task behind 12,000 others takes two pages', async () => {
  const s = await setup();
  try {
    // Waiting lists read newest first: the three sleep tasks, added first, sit behind every echo.
    const rare = await addJobs(s.queue, 'example.sleep', 3);
    for (let i = 0; i < 12; i++) await addJobs(s.queue, 'example.echo', 1000);
    const first = await s.manager.request('GET', '/v1/tasks?state=waiting&task=example.sleep&limit=50');
    assert.equal(first.status, 200);
    assert.deepEqual(first.body.tasks, [], 'the first page stopped after 10,000 entries');
    assert.ok(first.body.nextCursor);
    const second = await s.manager.request(
      'GET',
      `/v1/tasks?state=waiting&task=example.sleep&limit=50&cursor=${encodeURIComponent(first.body.nextCursor)}`,
    );
    assert.deepEqual(new Set(second.body.tasks.map((t: { id: string }) => t.id)), new Set(rare));
    assert.equal(second.body.nextCursor, undefined);
  } finally {
    await s.close();
  }
});
