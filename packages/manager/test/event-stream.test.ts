// GET /v1/events: lifecycle transitions as Server-Sent Events, read with `curl -N` from a real manager
// while a real worker runs the tasks; filters (several task ids, some transitions), Last-Event-ID
// resume, bad input and the stream bound; a rate-limited task's own transitions.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { followEvents } from '../../../test/support/event-stream.js';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { uniquePrefix } from '../../../test/support/redis-server.js';
import { startWorker, useManagerWithWorker } from './support/tasks.js';

const stack = useManagerWithWorker('events');
const others: TestManager[] = [];
after(async () => {
  for (const manager of others) await manager.close();
});

test('a task submitted over REST streams created, activated and completed, in order', async () => {
  const stream = followEvents(`${stack.manager.baseUrl}/v1/events`);
  try {
    await stream.opened();
    const submitted = await stack.manager.request('POST', '/v1/tasks', {
      task: 'example.echo',
      params: { n: 1 },
    });
    const completed = await stream.waitForEvent(
      (e) => e.data.taskId === submitted.body.id && e.data.transition === 'completed',
      'the completion',
    );
    const mine = stream.events.filter((e) => e.data.taskId === submitted.body.id);
    assert.deepEqual(
      mine.map((e) => [e.data.transition, e.data.state]),
      [
        ['created', 'waiting'],
        ['activated', 'active'],
        ['completed', 'completed'],
      ],
    );
    for (const e of mine) {
      assert.equal(e.data.queue, 'default');
      assert.equal(e.data.task, 'example.echo');
      assert.equal(e.id, e.data.id, 'the SSE id is the stream entry id');
      assert.match(e.id, /^\d+-\d+$/);
    }
    assert.ok(completed.data.at >= mine[0]!.data.at);
  } finally {
    stream.close();
  }
});

test('filters by task id and task type; Last-Event-ID replays what followed', async () => {
  const id = `sse-${Date.now()}`;
  const byId = followEvents(`${stack.manager.baseUrl}/v1/events?id=${id}`);
  const byOtherType = followEvents(`${stack.manager.baseUrl}/v1/events?task=example.sleep`);
  try {
    await byId.opened();
    await byOtherType.opened();
    await stack.manager.request('POST', '/v1/tasks', { task: 'example.echo', params: { n: 0 } });
    await stack.manager.request('POST', '/v1/tasks', { task: 'example.echo', id, params: { n: 2 } });
    const sleep = await stack.manager.request('POST', '/v1/tasks', {
      task: 'example.sleep',
      params: { ms: 1 },
    });
    await byId.waitForEvent((e) => e.data.transition === 'completed', 'the completion of the named task');
    await byOtherType.waitForEvent(
      (e) => e.data.taskId === sleep.body.id && e.data.transition === 'completed',
      'the sleep task to complete',
    );
    assert.deepEqual(new Set(byId.events.map((e) => e.data.taskId)), new Set([id]));
    assert.deepEqual(new Set(byOtherType.events.map((e) => e.data.task)), new Set(['example.sleep']));

    const created = byId.events.find((e) => e.data.transition === 'created')!;
    const resumed = followEvents(`${stack.manager.baseUrl}/v1/events?queue=default&id=${id}`, {
      'Last-Event-ID': created.id,
    });
    try {
      await resumed.waitForEvent((e) => e.data.transition === 'completed', 'the replayed completion');
      assert.deepEqual(
        resumed.events.map((e) => e.data.transition),
        ['activated', 'completed'],
        'only what followed the given id',
      );
    } finally {
      resumed.close();
    }
  } finally {
    byId.close();
    byOtherType.close();
  }
});

test('several task ids and some transitions: each filter matches any of its values, all filters must match', async () => {
  const ids = [`sse-a-${Date.now()}`, `sse-b-${Date.now()}`];
  const byIds = followEvents(`${stack.manager.baseUrl}/v1/events?id=${ids[0]}&id=${ids[1]}`);
  const created = followEvents(`${stack.manager.baseUrl}/v1/events?transition=created`);
  const finishedOfOne = followEvents(
    `${stack.manager.baseUrl}/v1/events?transition=activated&transition=completed&id=${ids[1]}`,
  );
  try {
    await Promise.all([byIds.opened(), created.opened(), finishedOfOne.opened()]);
    const other = await stack.manager.request('POST', '/v1/tasks', { task: 'example.echo', params: {} });
    for (const id of ids)
      await stack.manager.request('POST', '/v1/tasks', { task: 'example.echo', id, params: {} });
    // One queue's stream comes in order: the other task's creation came before theirs.
    for (const id of ids)
      await byIds.waitForEvent(
        (e) => e.data.taskId === id && e.data.transition === 'completed',
        `the completion of ${id}`,
      );
    await finishedOfOne.waitForEvent((e) => e.data.transition === 'completed', 'the completion of b');
    await created.waitForEvent((e) => e.data.taskId === ids[1], 'the creation of b');
    for (const id of ids)
      assert.deepEqual(
        byIds.events.filter((e) => e.data.taskId === id).map((e) => e.data.transition),
        ['created', 'activated', 'completed'],
      );
    assert.ok(!byIds.events.some((e) => e.data.taskId === other.body.id), 'only the tasks named');
    assert.deepEqual(
      finishedOfOne.events.map((e) => [e.data.taskId, e.data.transition]),
      [
        [ids[1], 'activated'],
        [ids[1], 'completed'],
      ],
    );
    const mine = created.events.filter((e) => [...ids, other.body.id].includes(e.data.taskId));
    assert.deepEqual(
      mine.map((e) => [e.data.taskId, e.data.transition]),
      [other.body.id, ...ids].map((id) => [id, 'created']),
    );
    assert.ok(created.events.every((e) => e.data.transition === 'created'));
  } finally {
    byIds.close();
    created.close();
    finishedOfOne.close();
  }
});

test('a task held back by its upstream streams rate-limited, then rate-limit-ended, then runs', {
  timeout: 60_000,
}, async () => {
  const tasks = fileURLToPath(new URL('../../worker/test/fixtures/rate-limited-tasks.mjs', import.meta.url));
  const prefix = uniquePrefix('events-limited');
  const manager = await startTestManager({ redisUrl: stack.redis.url, prefix, tasks });
  others.push(manager);
  const worker = await startWorker(stack.redis.url, prefix, { JOBBERS_TASKS: tasks });
  const stream = followEvents(`${manager.baseUrl}/v1/events?task=limit.upstream`);
  try {
    await stream.opened();
    const submitted = await manager.request('POST', '/v1/tasks', {
      task: 'limit.upstream',
      params: { notBefore: Date.now() + 2000, retryAfterMs: 500 },
    });
    assert.equal(submitted.status, 201);
    await stream.waitForEvent(
      (e) => e.data.taskId === submitted.body.id && e.data.transition === 'completed',
      'the completion',
    );
    const mine = stream.events
      .filter((e) => e.data.taskId === submitted.body.id)
      .map((e) => [e.data.transition, e.data.state]);
    assert.deepEqual(mine.slice(0, 4), [
      ['created', 'waiting'],
      ['activated', 'active'],
      ['rate-limited', 'delayed'],
      ['rate-limit-ended', 'waiting'],
    ]);
    assert.deepEqual(mine.slice(-2), [
      ['activated', 'active'],
      ['completed', 'completed'],
    ]);
  } finally {
    stream.close();
    await worker.stop();
  }
});

test('bad filters and ids are refused with a coded 400', async () => {
  const unknownQueue = await stack.manager.request('GET', '/v1/events?queue=nope');
  assert.equal(unknownQueue.status, 400);
  assert.equal(unknownQueue.body.error.code, 'UNKNOWN_QUEUE');
  const unknownTask = await stack.manager.request('GET', '/v1/events?task=no.such');
  assert.equal(unknownTask.status, 400);
  assert.equal(unknownTask.body.error.code, 'UNKNOWN_TASK_TYPE');
  const badId = await stack.manager.request('GET', '/v1/events', undefined, { 'Last-Event-ID': 'yesterday' });
  assert.equal(badId.status, 400);
  assert.equal(badId.body.error.code, 'INVALID_FILTER');
  const unknownTransition = await stack.manager.request('GET', '/v1/events?transition=finished');
  assert.equal(unknownTransition.status, 400);
  assert.match(unknownTransition.body.error.message, /transition/);
  const tooMany = Array.from({ length: 101 }, (_, n) => `id=t${n}`).join('&');
  const tooManyIds = await stack.manager.request('GET', `/v1/events?${tooMany}`);
  assert.equal(tooManyIds.status, 400);
  assert.match(tooManyIds.body.error.message, /id/);
});

test('streams beyond the bound are answered 429; closing one frees its place', async () => {
  const manager = await startTestManager({
    redisUrl: stack.redis.url,
    prefix: stack.prefix,
    extra: { events: { maxStreams: 1 } },
  });
  others.push(manager);
  const first = followEvents(`${manager.baseUrl}/v1/events`);
  await first.opened();
  const refused = await manager.request('GET', '/v1/events');
  assert.equal(refused.status, 429);
  assert.equal(refused.body.error.code, 'TOO_MANY_STREAMS');
  first.close();
  await first.exited;
  const second = followEvents(`${manager.baseUrl}/v1/events`);
  try {
    await second.opened();
  } finally {
    second.close();
  }
});

test('a stream whose unsent bytes pass the bound is disconnected, not buffered', async () => {
  const manager = await startTestManager({
    redisUrl: stack.redis.url,
    prefix: stack.prefix,
    extra: { events: { maxBufferedBytes: 1 } },
  });
  others.push(manager);
  const stream = followEvents(`${manager.baseUrl}/v1/events`);
  await stream.opened();
  await stack.manager.request('POST', '/v1/tasks/batch', {
    tasks: Array.from({ length: 200 }, (_, n) => ({ task: 'example.echo', params: { n } })),
  });
  // One byte of room: the first burst larger than the socket takes at once ends the stream.
  const code = await Promise.race([stream.exited, new Promise((r) => setTimeout(() => r('open'), 15_000))]);
  stream.close();
  assert.notEqual(code, 'open', 'the server ended the stream');
});

test('with API keys the stream needs one, like every /v1 route', async () => {
  const manager = await startTestManager({
    redisUrl: stack.redis.url,
    prefix: stack.prefix,
    apiKeys: ['events-key'],
  });
  others.push(manager);
  const refused = await manager.request('GET', '/v1/events');
  assert.equal(refused.status, 401);
  const wrong = await manager.request('GET', '/v1/events', undefined, { authorization: 'Bearer other-key' });
  assert.equal(wrong.status, 403);
  const stream = followEvents(`${manager.baseUrl}/v1/events?task=example.echo`, {
    Authorization: 'Bearer events-key',
  });
  try {
    await stream.opened();
    const submitted = await stack.manager.request('POST', '/v1/tasks', { task: 'example.echo', params: {} });
    await stream.waitForEvent(
      (e) => e.data.taskId === submitted.body.id && e.data.transition === 'completed',
      'the completion, with the key',
    );
  } finally {
    stream.close();
  }
});
