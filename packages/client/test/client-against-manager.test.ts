// @jobbers/client against a real jobbers-manager and jobbers-worker on a private Redis: typed
// submissions and their results, a submission retried after its answer was lost stays one task,
// 503s while Redis is frozen are retried until it answers, and the API's coded errors reach the
// caller without retries.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  createClient,
  JobbersApiError,
  type JobbersClient,
  TaskFailedError,
  type TaskRef,
  taskRef,
} from '@jobbers/client';
import type * as tasks from '@jobbers/examples';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import {
  type ManagerProcess,
  startManagerProcess,
  startWorkerProcess,
  type WorkerProcess,
} from '../../../test/support/stack.js';

let redis: RedisServer;
let manager: ManagerProcess;
let guarded: ManagerProcess;
let worker: WorkerProcess;
let client: JobbersClient;
const apiKey = 'client-test-key';

// Named by type alone, as a browser would: the tasks' code is never loaded here.
const echo = taskRef<typeof tasks.echo>('example.echo');
const sleep = taskRef<typeof tasks.sleepTask>('example.sleep');
const flaky = taskRef<typeof tasks.flaky>('example.flaky');

before(async () => {
  redis = await startRedisServer();
  const env = {
    REDIS_URL: redis.url,
    JOBBERS_PREFIX: uniquePrefix('client'),
    JOBBERS_REDIS_COMMAND_TIMEOUT_MS: '300',
  };
  [manager, guarded, worker] = await Promise.all([
    startManagerProcess(env),
    startManagerProcess({ ...env, JOBBERS_API_KEYS: apiKey, JOBBERS_EXPORTER: 'off' }),
    startWorkerProcess(env),
  ]);
  client = createClient({ baseUrl: manager.baseUrl, retryBaseDelayMs: 50, retryMaxDelayMs: 400 });
});
after(async () => {
  await Promise.all([worker?.stop(), manager?.stop(), guarded?.stop()]);
  await redis?.stop();
});

test('a typed submission runs and its result comes back typed', async () => {
  const submitted = await client.submit(echo, { hello: 'world' });
  assert.equal(submitted.created, true);
  assert.match(submitted.id, /^[0-9A-HJKMNP-TV-Z]{26}$/, 'the id is a ULID made by the client');
  assert.deepEqual(await client.result<typeof echo>(submitted.id, { timeoutMs: 20_000 }), { hello: 'world' });

  const slept = await client.task(sleep).run({ ms: 5 }, { timeoutMs: 20_000 });
  assert.equal(slept.sleptMs, 5);
  const view = await client.get(submitted.id);
  assert.equal(view.state, 'completed');
  assert.equal(view.task, 'example.echo');
});

test('result() waits on the event stream, and polls where there is none', async () => {
  const reads = { task: 0, events: 0 };
  const counting = (refuseEvents: boolean) =>
    createClient({
      baseUrl: manager.baseUrl,
      fetch: async (input, init) => {
        const url = String(input);
        if (url.includes('/v1/events')) {
          reads.events++;
          if (refuseEvents)
            return new Response('{"error":{"code":"NOT_FOUND","message":"no"}}', { status: 404 });
        } else if (url.includes('/v1/tasks/')) reads.task++;
        return fetch(input, init);
      },
    });
  const streamed = counting(false);
  const { id } = await streamed.submit(sleep, { ms: 1500 });
  reads.task = 0;
  assert.deepEqual(await streamed.result<typeof sleep>(id, { timeoutMs: 20_000, pollIntervalMs: 20 }), {
    sleptMs: 1500,
  });
  assert.equal(reads.events, 1, 'one event stream for the wait');
  assert.ok(reads.task <= 8, `read on events, not every 20 ms for 1.5 s: ${reads.task} reads`);

  const polling = counting(true);
  const second = await polling.submit(sleep, { ms: 500 });
  reads.task = 0;
  assert.deepEqual(await polling.result(second.id, { timeoutMs: 20_000, pollIntervalMs: 20 }), {
    sleptMs: 500,
  });
  assert.ok(reads.task >= 5, `without a stream it polls: ${reads.task} reads`);
});

test('a submission retried after its answer was lost is one task', async () => {
  let lost = 0;
  const losing = createClient({
    baseUrl: manager.baseUrl,
    retryBaseDelayMs: 10,
    // The manager receives and enqueues the first try; its answer never reaches the caller.
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      if (init?.method === 'POST' && lost === 0) {
        lost++;
        await response.arrayBuffer();
        throw new TypeError('fetch failed: connection reset after the request was sent');
      }
      return response;
    },
  });
  const submitted = await losing.submit(sleep, { ms: 60_000 }, { delay: 60_000 });
  assert.equal(lost, 1);
  assert.equal(submitted.created, false, 'the retry found the task the first try made');
  const delayed = await client.list({ task: 'example.sleep', state: 'delayed' });
  assert.deepEqual(
    delayed.tasks.map((t) => t.id),
    [submitted.id],
    'exactly one task was enqueued',
  );
  await client.cancel(submitted.id);
});

test('503s while Redis is frozen are retried until the submission lands', async () => {
  const statuses: number[] = [];
  const patient = createClient({
    baseUrl: manager.baseUrl,
    retries: 30,
    retryBaseDelayMs: 100,
    retryMaxDelayMs: 300,
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      statuses.push(response.status);
      return response;
    },
  });
  redis.process.kill('SIGSTOP');
  const thawed = new Promise((resolve) => setTimeout(() => resolve(redis.process.kill('SIGCONT')), 1500));
  try {
    const submitted = await patient.submit(echo, { frozen: true });
    assert.ok(statuses.includes(503), `the manager answered 503 while Redis was frozen: ${statuses}`);
    // Added by the retry (201), or by the frozen Redis running the first attempt once it woke, which
    // the retry, with the same id, then finds (200): one task either way.
    assert.ok([200, 201].includes(statuses.at(-1)!), `the last answer: ${statuses}`);
    assert.equal(submitted.created, statuses.at(-1) === 201);
    assert.deepEqual(await client.result(submitted.id, { timeoutMs: 20_000 }), { frozen: true });
  } finally {
    await thawed;
  }
});

test('coded errors reach the caller at once; requests that are not safe to repeat are sent once', async () => {
  let requests = 0;
  const counting = createClient({
    baseUrl: manager.baseUrl,
    fetch: (input, init) => {
      requests++;
      return fetch(input, init);
    },
  });
  const unknown: TaskRef<{ x: number }, unknown> = taskRef('example.nope');
  await assert.rejects(counting.submit(unknown, { x: 1 }), (error: unknown) => {
    assert.ok(error instanceof JobbersApiError);
    assert.equal(error.status, 400);
    assert.equal(error.code, 'UNKNOWN_TASK_TYPE');
    return true;
  });
  assert.equal(requests, 1, 'a 400 is not retried');
  await assert.rejects(counting.get('01J00000000000000000000000'), { status: 404, code: 'TASK_NOT_FOUND' });

  requests = 0;
  const down = createClient({
    baseUrl: 'http://127.0.0.1:9',
    retries: 3,
    retryBaseDelayMs: 1,
    fetch: (input, init) => {
      requests++;
      return fetch(input, init);
    },
  });
  await assert.rejects(down.cancel('01J00000000000000000000000'), TypeError);
  assert.equal(requests, 1, 'cancel is sent once: a repeat after a lost answer would read 404');
  requests = 0;
  await assert.rejects(down.get('01J00000000000000000000000'), TypeError);
  assert.equal(requests, 4, 'a read is retried 3 times after the first try');
});

test('a failed task and a cancelled one reject result() with TaskFailedError', async () => {
  const failing = await client.submit(flaky, { failTimes: 10 }, { retries: 0 });
  await assert.rejects(client.result(failing.id, { timeoutMs: 20_000 }), (error: unknown) => {
    assert.ok(error instanceof TaskFailedError);
    assert.equal(error.state, 'failed');
    assert.match(error.message, /flaky failure on attempt 1/);
    return true;
  });
  const later = await client.submit(sleep, { ms: 1 }, { delay: 60_000 });
  const cancelled = await client.cancel(later.id);
  assert.equal(cancelled.previousState, 'delayed');
  await assert.rejects(client.result(later.id, { timeoutMs: 5000 }), {
    name: 'TaskFailedError',
    state: 'gone',
  });
  const retried = await client.retry(failing.id);
  assert.equal(retried.id, failing.id);
});

test('a workflow submitted through the client runs and its merge reads every parent', async () => {
  const square = taskRef<typeof tasks.square>('example.square');
  const sum = taskRef<typeof tasks.sum>('example.sum');
  const workflow = await client.submitWorkflow({
    name: 'client-sum',
    nodes: [
      ...[2, 3].map((n) => ({ key: `sq${n}`, task: square, params: { n } })),
      { key: 'total', task: sum, params: {}, dependsOn: ['sq2', 'sq3'] },
    ],
  });
  assert.equal(workflow.created, true);
  const done = await client.workflowFinished(workflow.id, { timeoutMs: 20_000 });
  assert.equal(done.state, 'completed');
  assert.deepEqual(await client.result<typeof sum>(`${workflow.id}.total`), { value: 13, parts: 2 });
});

test('the API key is sent when given, and its absence is a 401', async () => {
  const anonymous = createClient({ baseUrl: guarded.baseUrl });
  await assert.rejects(anonymous.queues(), { status: 401, code: 'UNAUTHORIZED' });
  const keyed = createClient({ baseUrl: guarded.baseUrl, apiKey });
  const queues = await keyed.queues();
  assert.ok(queues.some((q) => q.name === 'default'));
  const paused = await keyed.pause('default');
  assert.equal(paused.paused, true);
  assert.equal((await keyed.resume('default')).paused, false);
});

test('bad client options are refused with a clear message', () => {
  assert.throws(() => createClient({ baseUrl: '/v1 on my laptop' }), /baseUrl .* is not a URL/);
  assert.throws(
    () => createClient({ baseUrl: manager.baseUrl, retries: -1 }),
    /retries must be a whole number/,
  );
});
