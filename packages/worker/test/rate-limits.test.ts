// Rate limits in real worker processes: a task type's limit holds across three workers, measured
// from the tasks' own start times; the limited backlog shows in jobbers_jobs_rate_limited and not in
// jobbers_jobs_available; each key value has a budget of its own; ctx.rateLimited(ms) runs the task
// again later without using a retry; and once everything has run both gauges read 0.
//
// The bound: the limiter admits a start (in Redis's clock) only while fewer than `max` starts lie in
// the last `per` ms, so admissions i and i+max are at least `per` apart. A task records its start
// after its admission, by one Redis round trip and a few event-loop turns: at most `startSlackMs`,
// generous for a loaded box. Redis and the workers run on this host, so they share one clock. Hence
// any two recorded starts `max` apart in order are at least per - startSlackMs apart.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bullmqPrefix, createLogger, LifecycleFeed } from '@jobbers/core';
import { Queue } from 'bullmq';
import { metricValue } from '../../../test/support/metrics.js';
import { type Harness, startHarness, waitFor } from './support/worker-harness.js';

const tasksModule = fileURLToPath(new URL('./fixtures/rate-limited-tasks.mjs', import.meta.url));
const startSlackMs = 200;
const testTimeoutMs = 90_000;

let h: Harness;
let queue: Queue;

before(async () => {
  h = await startHarness('rate-limit', tasksModule);
  queue = new Queue('limited', { connection: h.redis, prefix: bullmqPrefix(h.prefix, 'limited') });
});
afterEach(async () => {
  await h?.killWorkers();
});
after(async () => {
  await queue?.close();
  await h?.close();
});

function startWorkers(n: number) {
  return Promise.all(Array.from({ length: n }, () => h.startWorker({ WORKER_CONCURRENT_TASKS: '4' })));
}

interface Started {
  startedAt: number;
  attempt: number;
  pid: number;
}

async function results(ids: string[]): Promise<Started[]> {
  const views = await Promise.all(ids.map((id) => h.waitForState(id, ['completed', 'failed'], 60_000)));
  for (const view of views) assert.equal(view.state, 'completed', `task ${view.id} completed`);
  return views.map((v) => v.result as Started);
}

/** The smallest gap between starts `max` apart in order: at least per - slack when the limit held. */
function tightestWindow(starts: number[], max: number): number {
  const sorted = [...starts].sort((a, b) => a - b);
  let tightest = Number.POSITIVE_INFINITY;
  for (let i = 0; i + max < sorted.length; i++) tightest = Math.min(tightest, sorted[i + max]! - sorted[i]!);
  return tightest;
}

async function gauges(task: string) {
  const samples = await h.samples();
  return {
    rateLimited: metricValue(samples, 'jobbers_jobs_rate_limited', { queue: 'limited', task }),
    available: metricValue(samples, 'jobbers_jobs_available', { queue: 'limited', task }),
  };
}

async function countsOf(task: string) {
  const [delayed, waiting] = await Promise.all([
    queue.getJobs(['delayed'], 0, -1),
    queue.getJobs(['waiting', 'prioritized'], 0, -1),
  ]);
  return {
    delayed: delayed.filter((j) => j?.name === task).length,
    waiting: waiting.filter((j) => j?.name === task).length,
  };
}

test('a limit of 10 per second holds across 3 workers; the limited backlog is rate-limited, not available', {
  timeout: testTimeoutMs,
}, async (t) => {
  await startWorkers(3);
  const ids = (
    await h.client.submitBatch(Array.from({ length: 40 }, (_, i) => ({ task: 'limit.tick', params: { i } })))
  ).map((r) => r.id);
  // While the backlog waits for its turns it is counted rate-limited.
  await waitFor(async () => (await gauges('limit.tick')).rateLimited >= 10, {
    timeoutMs: 20_000,
    what: 'the limited backlog to show in jobbers_jobs_rate_limited',
  });
  // Stopped, the workers promote no delayed job: the state holds still and the gauges must equal
  // the truth read from BullMQ's lists.
  await h.killWorkers();
  const truth = await countsOf('limit.tick');
  const quiet = await gauges('limit.tick');
  assert.ok(truth.delayed > 0, 'some tasks were still waiting for the limit');
  assert.equal(quiet.rateLimited, truth.delayed, 'every rate-limited task, and only those, in its gauge');
  assert.equal(quiet.available, truth.waiting, 'no rate-limited task counted as available');

  await startWorkers(3);
  const done = await results(ids);
  const pids = new Set(done.map((r) => r.pid));
  assert.ok(pids.size >= 2, `the tasks ran in several workers (${pids.size})`);
  const tightest = tightestWindow(
    done.map((r) => r.startedAt),
    10,
  );
  const span = Math.max(...done.map((r) => r.startedAt)) - Math.min(...done.map((r) => r.startedAt));
  t.diagnostic(
    `40 starts over ${span} ms in ${pids.size} workers; starts 10 apart at least ${tightest} ms apart`,
  );
  assert.ok(
    tightest >= 1000 - startSlackMs,
    `starts 10 apart were ${tightest} ms apart (>= ${1000 - startSlackMs})`,
  );
  for (const r of done) assert.equal(r.attempt, 1, 'a task held back by its limit ran as its first attempt');
  assert.deepEqual(await gauges('limit.tick'), { rateLimited: 0, available: 0 });
  assert.ok((await h.transitions('limit.tick', 'rate-limited')) > 0);
  assert.equal(
    await h.transitions('limit.tick', 'rate-limited'),
    await h.transitions('limit.tick', 'rate-limit-ended'),
    'every rate-limited task came back',
  );
  assert.equal(await h.transitions('limit.tick', 'failed-with-backoff'), 0);
});

test('with a key, each value has a budget of its own', { timeout: testTimeoutMs }, async (t) => {
  await startWorkers(3);
  const batch = ['a', 'b'].flatMap((customer) =>
    Array.from({ length: 9 }, () => ({ task: 'limit.keyed', params: { customer } })),
  );
  const ids = (await h.client.submitBatch(batch)).map((r) => r.id);
  const done = await results(ids);
  const startsOf = (customer: string) =>
    done.filter((_, i) => batch[i]!.params.customer === customer).map((r) => r.startedAt);
  for (const customer of ['a', 'b']) {
    const tightest = tightestWindow(startsOf(customer), 3);
    assert.ok(
      tightest >= 1000 - startSlackMs,
      `customer ${customer}: starts 3 apart were ${tightest} ms apart`,
    );
  }
  // Together they started faster than one budget allows: 3 of a and 3 of b in the first window.
  const all = done.map((r) => r.startedAt).sort((x, y) => x - y);
  const firstWindow = all.filter((at) => at < all[0]! + 1000 - startSlackMs).length;
  t.diagnostic(`${firstWindow} starts in the first window of the two keys together`);
  assert.ok(firstWindow > 3, `${firstWindow} starts in the first window: more than one key's budget`);
  assert.deepEqual(await gauges('limit.keyed'), { rateLimited: 0, available: 0 });
});

test('ctx.rateLimited(ms) runs the task again after the wait, its attempt unchanged and no retry used', {
  timeout: testTimeoutMs,
}, async () => {
  await startWorkers(1);
  const submittedAt = Date.now();
  const id = await h.submit({
    task: 'limit.upstream',
    params: { notBefore: submittedAt + 700, retryAfterMs: 300 },
    retries: 0,
  });
  const view = await h.waitForState(id, ['completed', 'failed'], 30_000);
  assert.equal(view.state, 'completed', 'completed with retries: 0: no retry was used');
  const result = view.result as Started;
  assert.equal(result.attempt, 1, 'the run after the 429s has the attempt number of the first');
  assert.equal(view.attempts, 1);
  assert.ok(result.startedAt >= submittedAt + 700);
  const delays = await h.delays(id, 'limited');
  assert.ok(delays.length >= 2, `refused at least twice (${delays.length})`);
  for (const d of delays) assert.ok(d.dueMs - d.activeMs >= 300, 'each wait was at least the retry-after');
  assert.equal(await h.transitions('limit.upstream', 'rate-limited'), delays.length);
  assert.equal(await h.transitions('limit.upstream', 'rate-limit-ended'), delays.length);
  assert.equal(await h.transitions('limit.upstream', 'failed-with-backoff'), 0);
  assert.equal(await h.transitions('limit.upstream', 'yielded'), 0);
  assert.deepEqual(await gauges('limit.upstream'), { rateLimited: 0, available: 0 });
  // The event feed (GET /v1/events) tells the same story.
  const feed = new LifecycleFeed({
    connection: h.redis,
    prefix: h.prefix,
    queues: ['limited'],
    logger: createLogger('test'),
  });
  const transitions = (await feed.replay('limited', '0-0', 10_000))
    .filter((e) => e.taskId === id)
    .map((e) => e.transition);
  await feed.stop();
  assert.equal(transitions.filter((t) => t === 'rate-limited').length, delays.length, transitions.join());
  assert.equal(transitions.filter((t) => t === 'rate-limit-ended').length, delays.length, transitions.join());
  assert.ok(!transitions.includes('failed-with-backoff'), transitions.join());
});
