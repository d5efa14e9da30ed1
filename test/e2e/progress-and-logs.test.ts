// ctx.progress(value) and ctx.log(line) from a real worker process: GET /v1/tasks/:id shows the last
// progress and the kept log lines, and GET /v1/events carries each report as a `progress` event.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { followEvents } from '../support/event-stream.js';
import { startTestManager, type TestManager } from '../support/manager.js';
import { bins, type RunningProcess, repoRoot, startProcess } from '../support/processes.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

const tasks = `${repoRoot}test/e2e/fixtures/flow-tasks.mjs`;
let redis: RedisServer;
let manager: TestManager;
let worker: RunningProcess;

before(async () => {
  redis = await startRedisServer();
  const prefix = uniquePrefix('progress');
  manager = await startTestManager({ redisUrl: redis.url, prefix, tasks });
  worker = startProcess(bins.worker, [], {
    REDIS_URL: redis.url,
    JOBBERS_PREFIX: prefix,
    JOBBERS_TASKS: tasks,
    WORKER_METRICS_PORT: '0',
  });
  await worker.waitForOutput(/worker started/, 20_000);
});

after(async () => {
  await worker?.stop();
  await manager?.close();
  await redis?.stop();
});

function finished(id: string): Promise<any> {
  return waitFor(
    async () => {
      const res = await manager.request('GET', `/v1/tasks/${id}`);
      return ['completed', 'failed'].includes(res.body.state) ? res.body : undefined;
    },
    { timeoutMs: 20_000, what: `task ${id} to finish` },
  );
}

test('progress and log lines show in GET /v1/tasks/:id; bad progress values are refused', {
  timeout: 30_000,
}, async () => {
  const submitted = await manager.request('POST', '/v1/tasks', {
    task: 'flow.report',
    params: { steps: 3, lines: 4 },
  });
  assert.equal(submitted.status, 201);
  const task = await finished(submitted.body.id);
  assert.equal(task.state, 'completed');
  assert.deepEqual(task.progress, { step: 3, of: 3 });
  assert.deepEqual(task.logs, ['line 1', 'line 2', 'line 3', 'line 4']);
  assert.deepEqual(task.result.refused, ['TypeError', 'TypeError', 'TypeError']);
  assert.deepEqual(task.progress, { step: 3, of: 3 }, 'a refused value changed nothing');

  const quiet = await manager.request('POST', '/v1/tasks', { task: 'example.echo', params: {} });
  const echo = await finished(quiet.body.id);
  assert.equal('progress' in echo, false, 'a task that reported nothing shows no progress');
  assert.equal('logs' in echo, false);
});

test('a task keeps its last 1000 log lines, each cut at 8192 characters', { timeout: 60_000 }, async () => {
  const submitted = await manager.request('POST', '/v1/tasks', {
    task: 'flow.report',
    params: { steps: 0, lines: 1004, longLine: true },
  });
  const task = await finished(submitted.body.id);
  assert.equal(task.state, 'completed');
  assert.equal(task.logs.length, 1000);
  assert.equal(task.logs[0], 'line 6', 'the oldest lines went first');
  assert.equal(task.logs[998], 'line 1004');
  assert.equal(task.logs[999], `${'x'.repeat(8192)}…`);
});

test('GET /v1/events sends each progress report as a named progress event, between the transitions', {
  timeout: 30_000,
}, async () => {
  const stream = followEvents(`${manager.baseUrl}/v1/events?task=flow.report`);
  // Unfiltered, it takes the feed's whole batches, rendered once for every such stream.
  const all = followEvents(`${manager.baseUrl}/v1/events`);
  try {
    await stream.opened();
    await all.opened();
    const submitted = await manager.request('POST', '/v1/tasks', {
      task: 'flow.report',
      params: { steps: 2, lines: 0 },
    });
    const id = submitted.body.id;
    await stream.waitForEvent((e) => e.data.taskId === id && e.data.transition === 'completed', 'completion');
    const mine = stream.events.filter((e) => e.data.taskId === id);
    assert.deepEqual(
      mine.map((e) => (e.event === 'progress' ? `progress ${e.data.progress.step}` : e.data.transition)),
      ['created', 'activated', 'progress 1', 'progress 2', 'completed'],
    );
    const progress = mine.find((e) => e.event === 'progress')!;
    assert.equal(progress.data.kind, 'progress');
    assert.equal(progress.data.task, 'flow.report');
    assert.equal(progress.data.queue, 'default');
    assert.equal(progress.id, progress.data.id);
    assert.deepEqual(progress.data.progress, { step: 1, of: 2 });
    // Written by hand, as JSON.stringify writes the event: the same fields in the same order.
    assert.deepEqual(Object.keys(progress.data), ['kind', 'id', 'queue', 'task', 'taskId', 'progress', 'at']);
    assert.equal(progress.data.at, Number(progress.id.split('-')[0]));
    await all.waitForEvent((e) => e.data.taskId === id && e.data.transition === 'completed', 'completion');
    assert.deepEqual(
      all.events.filter((e) => e.data.taskId === id),
      mine,
      'an unfiltered stream sends the same events',
    );
  } finally {
    stream.close();
    all.close();
  }
});
