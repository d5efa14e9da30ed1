// GET /metrics: cluster-wide series read from Redis (identical on every manager, so `max by` over
// instances never double counts), one exporter leader at a time, and per-process HTTP metrics.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { metricValue, parseExposition } from '../../../test/support/metrics.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';

let redis: RedisServer;
let first: TestManager;
let second: TestManager;

before(async () => {
  redis = await startRedisServer();
  const prefix = uniquePrefix('metrics');
  first = await startTestManager({ redisUrl: redis.url, prefix, exporter: true });
  await first.exporter!.waitUntilReady();
  second = await startTestManager({ redisUrl: redis.url, prefix, exporter: true });
});
after(async () => {
  await first?.close();
  await second?.close();
  await redis?.stop();
});

async function scrape(manager: TestManager) {
  const response = await fetch(`${manager.baseUrl}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /text\/plain/);
  return parseExposition(await response.text());
}

test('one exporter leads per queue however many managers run', async () => {
  await waitFor(() => first.exporter!.leading.length + second.exporter!.leading.length === 1, {
    what: 'a single leader',
  });
  assert.deepEqual([...first.exporter!.leading, ...second.exporter!.leading], ['default']);
});

test('both managers expose the same cluster-wide numbers', async () => {
  for (let i = 0; i < 7; i++)
    await first.request('POST', '/v1/tasks', { task: 'example.echo', params: { i } });
  await second.request('POST', '/v1/tasks', { task: 'example.sleep', params: { ms: 1 }, delay: 60_000 });
  await first.exporter!.waitUntilCaughtUp();
  const [a, b] = await Promise.all([scrape(first), scrape(second)]);
  const pick = (samples: typeof a, name: string, labels: Record<string, string>) =>
    metricValue(samples, name, labels);
  for (const [name, labels, expected] of [
    ['jobbers_jobs_available', { queue: 'default', task: 'example.echo' }, 7],
    ['jobbers_jobs_available', { queue: 'default', task: 'example.sleep' }, 0],
    ['jobbers_job_transitions_total', { queue: 'default', task: 'example.echo', transition: 'created' }, 7],
    ['jobbers_jobs', { queue: 'default', state: 'delayed' }, 1],
    ['jobbers_jobs', { queue: 'default', state: 'waiting' }, 7],
  ] as const) {
    assert.equal(pick(a, name, labels), expected, `${name} ${JSON.stringify(labels)} on the first manager`);
    assert.equal(pick(b, name, labels), expected, `${name} ${JSON.stringify(labels)} on the second manager`);
  }
  const queue = await second.request('GET', '/v1/queues/default');
  assert.equal(queue.body.available['example.echo'], 7);
});

test('every registered task has its series, even at zero, and task labels stay bounded', async () => {
  const samples = await scrape(first);
  for (const task of ['example.echo', 'example.sleep', 'example.flaky', 'example.heartbeat']) {
    assert.ok(samples.some((s) => s.name === 'jobbers_jobs_available' && s.labels.task === task));
    assert.ok(samples.some((s) => s.name === 'jobbers_tasks_processed_total' && s.labels.task === task));
  }
  const tasks = new Set(samples.filter((s) => s.labels.task).map((s) => s.labels.task));
  assert.ok([...tasks].every((t) => t!.startsWith('example.') || t === 'other'));
});

test('the HTTP metrics of this manager are exposed per process', async () => {
  await first.request('GET', '/v1/tasks/unknown-task');
  const samples = await scrape(first);
  assert.ok(
    metricValue(samples, 'jobbers_http_requests_total', {
      method: 'GET',
      route: '/v1/tasks/:id',
      status_code: '404',
    }) >= 1,
  );
  assert.ok(samples.some((s) => s.name === 'jobbers_http_request_duration_seconds_bucket'));
  assert.ok(samples.some((s) => s.name === 'jobbers_http_inflight_requests'));
  assert.ok(samples.some((s) => s.name.startsWith('jobbers_manager_process_')));
});

test('when the leading manager stops, the other takes over the exporter', async () => {
  const leader = first.exporter!.leading.length > 0 ? first : second;
  const other = leader === first ? second : first;
  await leader.exporter!.stop();
  await waitFor(() => other.exporter!.leading.includes('default'), {
    timeoutMs: 10_000,
    what: 'the takeover',
  });
  await other.request('POST', '/v1/tasks', { task: 'example.echo', params: {} });
  await other.exporter!.waitUntilCaughtUp();
  assert.equal(metricValue(await scrape(other), 'jobbers_jobs_available', { task: 'example.echo' }), 8);
});
