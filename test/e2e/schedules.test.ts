// Schedules on BullMQ Job Schedulers, with two manager processes and two worker processes: a
// schedule from a task definition runs once per tick; /v1/schedules creates, reads, replaces,
// pauses, resumes and deletes; bad input is refused; a run not yet due is delayed, not available.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createRedisConnection, scheduledJobIdPattern } from '@jobbers/core';
import type { Redis } from 'ioredis';
import { metricValue, parseExposition } from '../support/metrics.js';
import { repoRoot } from '../support/processes.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import {
  type ManagerProcess,
  startManagerProcess,
  startWorkerProcess,
  type WorkerProcess,
} from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const tasks = `${repoRoot}test/e2e/fixtures/schedule-tasks.mjs`;
const prefix = uniquePrefix('sched');
let server: RedisServer;
let redis: Redis;
const managers: ManagerProcess[] = [];
const workers: WorkerProcess[] = [];

before(async () => {
  server = await startRedisServer();
  redis = createRedisConnection(server.url);
  const env = { REDIS_URL: server.url, JOBBERS_PREFIX: prefix, JOBBERS_TASKS: tasks };
  managers.push(...(await Promise.all([startManagerProcess(env), startManagerProcess(env)])));
  workers.push(
    ...(await Promise.all([
      startWorkerProcess({ ...env, WORKER_CONCURRENT_TASKS: '4' }),
      startWorkerProcess({ ...env, WORKER_CONCURRENT_TASKS: '4' }),
    ])),
  );
});

after(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await Promise.all(managers.map((m) => m.stop()));
  redis?.disconnect();
  await server?.stop();
});

async function metrics(manager: ManagerProcess) {
  const reply = await fetch(`${manager.baseUrl}/metrics`);
  return parseExposition(await reply.text());
}

test('a schedule runs once per tick with two managers and two workers', { timeout: 60_000 }, async () => {
  const ticksKey = `${prefix}:test:ticks`;
  await waitFor(async () => (await redis.llen(ticksKey)) >= 10, {
    timeoutMs: 30_000,
    what: 'ten runs of flow.tick',
  });
  const paused = await managers[1]!.request('POST', '/v1/schedules/flow.tick/pause');
  assert.equal(paused.status, 200);
  assert.equal(paused.body.paused, true);
  assert.equal(paused.body.next, undefined);
  // The run that may have been taken as the pause came finishes; then nothing more comes.
  await waitFor(async () => (await redis.llen(`${prefix}:default:active`)) === 0, {
    timeoutMs: 10_000,
    what: 'the last run to finish',
  });
  const runs = (await redis.lrange(ticksKey, 0, -1)).map((line) => line.split('|'));
  const ids = runs.map(([id]) => id!);
  assert.equal(new Set(ids).size, ids.length, `each tick ran once: ${ids.join(', ')}`);
  assert.ok(
    runs.every(([, , attempt]) => attempt === '1'),
    'no run was retried',
  );
  const ticks = ids.map((id) => Number(scheduledJobIdPattern.exec(id)?.[2])).sort((a, b) => a - b);
  assert.ok(ticks.every(Number.isFinite), 'every run came from the schedule');
  for (let i = 1; i < ticks.length; i++)
    assert.ok(
      ticks[i]! - ticks[i - 1]! >= 500,
      `ticks ${ticks[i - 1]} and ${ticks[i]} are 500 ms apart or more`,
    );
  const pids = new Set(runs.map(([, pid]) => pid));
  assert.ok(pids.size >= 1);
  const run = await managers[0]!.request('GET', `/v1/tasks/${encodeURIComponent(ids[0]!)}`);
  assert.equal(run.status, 200, 'a run is a task like any other');
  assert.deepEqual(run.body.params, { label: 'every-500' });

  await waitFor(
    async () =>
      metricValue(await metrics(managers[0]!), 'jobbers_schedule_runs_total', { schedule: 'flow.tick' }) ===
      ids.length,
    { timeoutMs: 10_000, what: 'jobbers_schedule_runs_total to count every run' },
  );
  const samples = await metrics(managers[1]!);
  assert.equal(
    metricValue(samples, 'jobbers_schedule_lateness_seconds_count', {
      schedule: 'flow.tick',
      task: 'flow.tick',
    }),
    ids.length,
    'each run observed its lateness once',
  );
  const stillPaused = await managers[0]!.request('GET', '/v1/schedules/flow.tick');
  assert.equal(stillPaused.body.source, 'definition');
  assert.equal(stillPaused.body.paused, true);
  assert.equal(await redis.llen(ticksKey), ids.length, 'no run while paused');

  const resumed = await managers[0]!.request('POST', '/v1/schedules/flow.tick/resume');
  assert.equal(resumed.body.paused, false);
  assert.ok(Date.parse(resumed.body.next) > 0);
  await waitFor(async () => (await redis.llen(ticksKey)) > ids.length, {
    timeoutMs: 10_000,
    what: 'a run after resuming',
  });
  await managers[0]!.request('POST', '/v1/schedules/flow.tick/pause');
});

test('/v1/schedules creates, reads, replaces, pauses and deletes; a run not yet due is not available', {
  timeout: 60_000,
}, async () => {
  const [m0, m1] = managers as [ManagerProcess, ManagerProcess];
  const created = await m0.request('POST', '/v1/schedules', {
    id: 'new-year',
    task: 'example.echo',
    params: { hello: 'year' },
    cron: '0 0 1 1 *',
    tz: 'Europe/Paris',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.source, 'api');
  assert.equal(created.body.tz, 'Europe/Paris');
  const next = new Date(created.body.next);
  assert.equal(
    new Intl.DateTimeFormat('en-GB', {
      timeZone: 'Europe/Paris',
      dateStyle: 'short',
      timeStyle: 'short',
    }).format(next),
    `01/01/${next.getUTCFullYear() + (next.getUTCMonth() === 11 ? 1 : 0)}, 00:00`,
    'the next run is at midnight in Paris on New Year',
  );
  assert.equal(
    (await m1.request('POST', '/v1/schedules', { id: 'new-year', task: 'example.echo', every: 1000 })).status,
    409,
  );

  const listed = await m1.request('GET', '/v1/schedules');
  assert.deepEqual(
    listed.body.schedules.map((s: { id: string }) => s.id),
    ['flow.tick', 'new-year'],
  );
  const delayedRuns = await m1.request('GET', '/v1/tasks?task=example.echo&state=delayed');
  assert.equal(delayedRuns.body.tasks.length, 1, 'the next run waits, delayed');
  await waitFor(
    async () => {
      const samples = await metrics(m0);
      return (
        metricValue(samples, 'jobbers_jobs', { queue: 'default', state: 'delayed' }) >= 1 &&
        metricValue(samples, 'jobbers_jobs_available', { queue: 'default', task: 'example.echo' }) === 0
      );
    },
    { timeoutMs: 10_000, what: 'the run to show as delayed, not available' },
  );

  const replaced = await m1.request('PUT', '/v1/schedules/new-year', {
    task: 'example.echo',
    params: { hello: 'often' },
    every: 60_000,
  });
  assert.equal(replaced.status, 200);
  assert.equal(replaced.body.cron, undefined);
  assert.equal(replaced.body.every, 60_000);
  const paused = await m0.request('POST', '/v1/schedules/new-year/pause');
  assert.equal(paused.body.paused, true);
  assert.equal(
    (await m0.request('GET', '/v1/tasks?task=example.echo&state=delayed')).body.tasks.length,
    0,
    'pausing removed the next run',
  );
  assert.equal((await m0.request('DELETE', '/v1/schedules/new-year')).status, 200);
  assert.equal((await m0.request('GET', '/v1/schedules/new-year')).status, 404);
  assert.equal((await m0.request('DELETE', '/v1/schedules/new-year')).status, 404);

  const refused = await m0.request('PUT', '/v1/schedules/flow.tick', { task: 'flow.tick', every: 1000 });
  assert.equal(refused.status, 409, 'a schedule from a definition changes in code');
});

test('bad schedules are refused with a reason and make nothing', { timeout: 30_000 }, async () => {
  const bad = [
    { id: 'b1', task: 'example.echo', cron: 'every day' },
    { id: 'b2', task: 'example.echo', cron: '* * * * *', tz: 'Mars/Olympus' },
    { id: 'b3', task: 'example.echo', cron: '* * * * *', every: 1000 },
    { id: 'b4', task: 'example.echo' },
    { id: 'b5', task: 'example.sleep', every: 1000, params: { ms: 'long' } },
    { id: 'b6', task: 'no.such', every: 1000 },
    {
      id: 'b7',
      task: 'example.echo',
      every: 1000,
      start: '2030-01-02T00:00:00Z',
      end: '2030-01-01T00:00:00Z',
    },
    { id: 'b8', task: 'example.echo', every: 10 },
  ];
  for (const body of bad) {
    const reply = await managers[0]!.request('POST', '/v1/schedules', body);
    assert.equal(reply.status, 400, `${JSON.stringify(body)} -> ${JSON.stringify(reply.body)}`);
    assert.ok(reply.body.error.message.length > 0);
  }
  const listed = await managers[0]!.request('GET', '/v1/schedules');
  assert.deepEqual(
    listed.body.schedules.map((s: { id: string }) => s.id),
    ['flow.tick'],
  );
});
