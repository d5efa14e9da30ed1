// Redis frozen (SIGSTOP): the API answers 503 REDIS_UNAVAILABLE instead of hanging, /readyz turns
// not-ready, /metrics still serves this process's metrics with jobbers_cluster_metrics_up 0; after
// SIGCONT everything answers again without a restart and the task submitted before is intact.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { metricValue, parseExposition } from '../../../test/support/metrics.js';
import { bins, runProcess } from '../../../test/support/processes.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';

let redis: RedisServer;
let manager: TestManager;

before(async () => {
  redis = await startRedisServer();
  manager = await startTestManager({ redisUrl: redis.url, prefix: uniquePrefix('frozen'), exporter: true });
  await manager.exporter!.waitUntilReady();
});
after(async () => {
  redis?.process.kill('SIGCONT');
  await manager?.close();
  await redis?.stop();
});

/** A request that gives up after 5 s: a hung Redis must not hold it that long. */
async function call(method: string, path: string, body?: unknown) {
  const response = await fetch(`${manager.baseUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  return { status: response.status, text, json: () => JSON.parse(text) };
}

test('with Redis frozen the API, /readyz and /metrics answer; after SIGCONT all recovers', async () => {
  const before = await call('POST', '/v1/tasks', { task: 'example.echo', params: { n: 1 } });
  assert.equal(before.status, 201, before.text);
  const { id } = before.json();
  await manager.exporter!.waitUntilCaughtUp();
  const live = parseExposition((await call('GET', '/metrics')).text);
  assert.equal(metricValue(live, 'jobbers_cluster_metrics_up'), 1);

  redis.process.kill('SIGSTOP');
  let unanswered: string;
  try {
    const submit = await call('POST', '/v1/tasks', { task: 'example.echo', params: { n: 2 } });
    assert.equal(submit.status, 503, submit.text);
    assert.equal(submit.json().error.code, 'REDIS_UNAVAILABLE');
    unanswered = submit.json().error.details.id;
    assert.match(submit.json().error.message, /resubmit with this id/);
    const read = await call('GET', `/v1/tasks/${id}`);
    assert.equal(read.status, 503, read.text);
    assert.equal((await call('GET', '/readyz')).status, 503);
    assert.equal((await call('GET', '/healthz')).status, 200);

    const scrape = await call('GET', '/metrics');
    assert.equal(scrape.status, 200, scrape.text);
    const samples = parseExposition(scrape.text);
    assert.equal(metricValue(samples, 'jobbers_cluster_metrics_up'), 0);
    assert.ok(
      !samples.some((s) => s.name === 'jobbers_jobs_available'),
      'cluster series are left out while they cannot be read',
    );
    assert.ok(samples.some((s) => s.name.startsWith('jobbers_manager_process_')));
    assert.ok(samples.some((s) => s.name === 'jobbers_metrics_flush_failures_total'));
  } finally {
    redis.process.kill('SIGCONT');
  }

  await waitFor(async () => (await call('GET', '/readyz')).status === 200, { what: 'ready again' });
  const read = await call('GET', `/v1/tasks/${id}`);
  assert.equal(read.status, 200, read.text);
  assert.equal(read.json().task, 'example.echo');
  const after = await call('POST', '/v1/tasks', { task: 'example.echo', params: { n: 3 } });
  assert.equal(after.status, 201, after.text);
  // A 503 says the answer did not come in time, not that nothing was added: the submission made
  // while Redis was frozen had sent its add (id check and add are one script), which Redis ran once
  // it resumed. The 503 named the id: resubmitting with it finds that task and adds none.
  const again = await call('POST', '/v1/tasks', { id: unanswered, task: 'example.echo', params: { n: 2 } });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.json().id, unanswered);
  await waitFor(
    async () => {
      const samples = parseExposition((await call('GET', '/metrics')).text);
      return (
        metricValue(samples, 'jobbers_cluster_metrics_up') === 1 &&
        metricValue(samples, 'jobbers_jobs_available', { task: 'example.echo' }) === 3
      );
    },
    { what: 'cluster metrics back, counting the three tasks' },
  );
});

test('--redis-command-timeout sets JOBBERS_REDIS_COMMAND_TIMEOUT_MS; a bad value is refused by name', async () => {
  const env = { REDIS_URL: redis.url, JOBBERS_TASKS: '@jobbers/examples', MANAGER_PORT: '0' };
  // A duration with a unit, set as milliseconds: 50ms is below the variable's bound.
  const tooShort = await runProcess(bins.manager, ['--redis-command-timeout', '50ms'], env, 20_000);
  assert.equal(tooShort.code, 1, tooShort.output);
  assert.match(
    tooShort.output,
    /JOBBERS_REDIS_COMMAND_TIMEOUT_MS="50" must be a whole number between 100 and 600000/,
  );
  const notDuration = await runProcess(bins.manager, ['--redis-command-timeout', 'soon'], env, 20_000);
  assert.equal(notDuration.code, 1, notDuration.output);
  assert.match(notDuration.output, /--redis-command-timeout "soon" must be a duration/);
});
