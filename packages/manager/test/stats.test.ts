// GET /v1/stats: the console's numbers from the cluster-wide metrics, with a bounded minute history.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadTasks, recordStatsMinute, statsHistoryKey } from '@jobbers/core';
import { uniquePrefix } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';
import { taskInState, useManagerWithWorker } from './support/tasks.js';

const stack = useManagerWithWorker('stats');

test('rates, quantiles and retry rate follow the tasks that ran; history starts at the first minute', async () => {
  const ids: string[] = [];
  for (let n = 0; n < 5; n++) {
    ids.push(
      (await stack.manager.request('POST', '/v1/tasks', { task: 'example.echo', params: { n } })).body.id,
    );
  }
  const flaky = await stack.manager.request('POST', '/v1/tasks', {
    task: 'example.flaky',
    params: { failTimes: 1 },
  });
  for (const id of [...ids, flaky.body.id]) await taskInState(stack.manager, id, ['completed']);
  await stack.manager.exporter!.waitUntilCaughtUp();
  const stats = await waitFor(
    async () => {
      const reply = await stack.manager.request('GET', '/v1/stats');
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      const echo = reply.body.tasks.find((t: any) => t.task === 'example.echo');
      const retried = reply.body.tasks.find((t: any) => t.task === 'example.flaky');
      // Workers flush their counts once a second: wait until both outcomes are in.
      return echo.completedPerMinute > 0 && retried.retryRate !== null && retried.completedPerMinute > 0
        ? reply.body
        : undefined;
    },
    { what: 'the stats to show the finished tasks' },
  );
  const echo = stats.tasks.find((t: any) => t.task === 'example.echo');
  const flakyStats = stats.tasks.find((t: any) => t.task === 'example.flaky');
  assert.equal(echo.queue, 'default');
  assert.equal(echo.available, 0);
  assert.equal(echo.running, 0);
  assert.equal(echo.incidents, 0);
  assert.equal(echo.backlogAgeSeconds, 0);
  assert.ok(echo.createdPerMinute > 0);
  assert.equal(typeof echo.timeInQueueP50Seconds, 'number');
  assert.ok(echo.timeInQueueP95Seconds >= echo.timeInQueueP50Seconds);
  assert.equal(typeof echo.executionP95Seconds, 'number');
  assert.equal(echo.retryRate, 0);
  assert.equal(echo.timeoutRate, 0);
  assert.equal(flakyStats.retryRate, 0.5, 'one retried attempt of two activations');
  assert.ok(stats.windowStart <= stats.at);
  // The manager recorded its first minute when it started; the last point is now.
  assert.ok(echo.history.at.length >= 2, JSON.stringify(echo.history));
  assert.equal(echo.history.at.at(-1), stats.at);
  assert.equal(echo.history.createdPerMinute[0], null, 'no rate before the first point');
  for (const series of Object.values<unknown[]>(echo.history))
    assert.equal(series.length, echo.history.at.length);
});

test('a backlog shows as available with its age', async () => {
  await stack.manager.request('POST', '/v1/queues/default/pause');
  try {
    await stack.manager.request('POST', '/v1/tasks', { task: 'example.sleep', params: { ms: 1 } });
    await stack.manager.exporter!.waitUntilCaughtUp();
    const stats = await waitFor(
      async () => {
        const body = (await stack.manager.request('GET', '/v1/stats')).body;
        const sleep = body.tasks.find((t: any) => t.task === 'example.sleep');
        return sleep.available === 1 && sleep.backlogAgeSeconds > 0 ? sleep : undefined;
      },
      { what: 'the backlog to show' },
    );
    assert.equal(stats.running, 0);
  } finally {
    await stack.manager.request('POST', '/v1/queues/default/resume');
  }
});

test('one snapshot per minute however many managers record; snapshots past the hour are dropped', async () => {
  const registry = await loadTasks('@jobbers/examples');
  const prefix = uniquePrefix('stats-history');
  const redis = stack.manager.connection;
  const key = statsHistoryKey(prefix);
  const [seconds] = await redis.time();
  const minute = Number(seconds) * 1000 - ((Number(seconds) * 1000) % 60_000);
  await redis.zadd(key, minute - 2 * 3600_000, 'two hours old', minute - 30 * 60_000, 'half an hour old');
  const recorded = await Promise.all([1, 2, 3].map(() => recordStatsMinute(redis, prefix, registry)));
  const stored = await redis.zrange(key, 0, -1, 'WITHSCORES');
  // A record that raced past the minute boundary may have added the next minute too.
  const minutes = new Set(stored.filter((_, i) => i % 2 === 1).map(Number));
  assert.ok(!minutes.has(minute - 2 * 3600_000), 'older than the history: dropped');
  assert.ok(minutes.has(minute - 30 * 60_000), 'within the hour: kept');
  assert.equal(stored.length / 2, minutes.size, 'one snapshot per minute');
  assert.ok(recorded.filter(Boolean).length >= 1 && recorded.filter(Boolean).length <= minutes.size);
  assert.ok((await redis.pttl(key)) > 3600_000, 'the set expires if no manager records any more');
});
