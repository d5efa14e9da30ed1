// Which worker runs each attempt: the recorder batches the attempts a worker starts within a few
// milliseconds into one script call per queue, skips jobs that are gone, keeps each job's field under
// 8 KiB, and writes what is pending when flushed (a worker's graceful stop).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AttemptWorkerRecorder, jobHashField, jobKey, parseAttemptWorkers } from '@jobbers/core';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';

const fixture = useRedisServer();

test('attempts started in one turn are written in one call per queue; a gone job is skipped', {
  timeout: 30_000,
}, async () => {
  const { redis } = fixture;
  const prefix = uniquePrefix('attempts');
  for (const [queue, id] of [
    ['a', '1'],
    ['a', '2'],
    ['b', '3'],
  ])
    await redis.hset(jobKey(prefix, queue!, id!), 'name', 'demo');
  const errors: unknown[] = [];
  const recorder = new AttemptWorkerRecorder(redis, prefix, (error) => errors.push(error));
  const calls = async () =>
    Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
  // Loaded into Redis first (ioredis sends the script itself once, after a NOSCRIPT).
  recorder.record('warm-up', 'none', { attempt: 1, worker: 'host:0', startedAt: 1 });
  await recorder.flush();
  const before = await calls();
  recorder.record('a', '1', { attempt: 1, worker: 'host:1', startedAt: 1000 });
  recorder.record('a', '2', { attempt: 1, worker: 'host:1', startedAt: 1001 });
  recorder.record('b', '3', { attempt: 2, worker: 'host:2', startedAt: 1002 });
  recorder.record('b', 'gone', { attempt: 1, worker: 'host:2', startedAt: 1003 });
  const field = (queue: string, id: string) =>
    redis.hget(jobKey(prefix, queue, id), jobHashField.attemptWorkers);
  await waitFor(async () => (await field('b', '3')) !== null, {
    timeoutMs: 5_000,
    what: 'the batch to be written',
  });
  assert.equal((await calls()) - before, 2, 'one call per queue');
  assert.deepEqual(parseAttemptWorkers(await field('a', '1')), [
    { attempt: 1, worker: 'host:1', startedAt: 1000 },
  ]);
  assert.deepEqual(parseAttemptWorkers(await field('a', '2')), [
    { attempt: 1, worker: 'host:1', startedAt: 1001 },
  ]);
  assert.deepEqual(parseAttemptWorkers(await field('b', '3')), [
    { attempt: 2, worker: 'host:2', startedAt: 1002 },
  ]);
  assert.equal(await redis.exists(jobKey(prefix, 'b', 'gone')), 0, 'a gone job is not brought back');
  assert.deepEqual(errors, []);
});

test('flush writes what is pending at once; a field stays under 8 KiB, newest lines kept', {
  timeout: 30_000,
}, async () => {
  const { redis } = fixture;
  const prefix = uniquePrefix('attempts-flush');
  await redis.hset(jobKey(prefix, 'q', 'x'), 'name', 'demo');
  const recorder = new AttemptWorkerRecorder(redis, prefix, () => {}, 60_000);
  const worker = `host-${'w'.repeat(200)}:7`;
  for (let attempt = 1; attempt <= 100; attempt++)
    recorder.record('q', 'x', { attempt, worker, startedAt: attempt });
  await recorder.flush();
  const field = (await redis.hget(jobKey(prefix, 'q', 'x'), jobHashField.attemptWorkers))!;
  assert.ok(field.length <= 8192, `${field.length} bytes`);
  const attempts = parseAttemptWorkers(field).map((a) => a.attempt);
  assert.equal(attempts.at(-1), 100, 'the newest attempt is kept');
  assert.ok(attempts.length < 100 && attempts[0]! > 1, 'the oldest are dropped');
});

test('a failed write is reported with its queue, not thrown', { timeout: 30_000 }, async () => {
  const { redis } = fixture;
  const prefix = uniquePrefix('attempts-error');
  await redis.set(jobKey(prefix, 'q', 'x'), 'not a hash');
  const errors: [unknown, string][] = [];
  const recorder = new AttemptWorkerRecorder(
    redis,
    prefix,
    (error, queue) => errors.push([error, queue]),
    60_000,
  );
  recorder.record('q', 'x', { attempt: 1, worker: 'h:1', startedAt: 1 });
  await recorder.flush();
  assert.equal(errors.length, 1);
  assert.equal(errors[0]![1], 'q');
  assert.match(String(errors[0]![0]), /WRONGTYPE/);
});

test('the batches of successive turns are sent at once, not each after the previous reply', {
  timeout: 30_000,
}, async () => {
  const { redis } = fixture;
  const prefix = uniquePrefix('attempts-pipelined');
  for (let i = 0; i < 5; i++) await redis.hset(jobKey(prefix, 'q', `j${i}`), 'name', 'demo');
  const connection = redis.duplicate();
  const errors: unknown[] = [];
  const recorder = new AttemptWorkerRecorder(connection, prefix, (error) => errors.push(error));
  recorder.record('warm-up', 'none', { attempt: 1, worker: 'host:0', startedAt: 1 });
  await recorder.flush();
  // Redis busy for 300 ms: no reply comes back meanwhile.
  const busy = redis
    .duplicate()
    .eval(
      "local t0 = redis.call('TIME') repeat local t = redis.call('TIME') until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 300000 return 1",
      0,
    );
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (let i = 0; i < 5; i++) {
    recorder.record('q', `j${i}`, { attempt: 1, worker: 'host:1', startedAt: 1000 + i });
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.equal(connection.commandQueue.length, 5, "every turn's batch is on the wire, awaiting its reply");
  await busy;
  await recorder.flush();
  for (let i = 0; i < 5; i++) {
    const field = await redis.hget(jobKey(prefix, 'q', `j${i}`), jobHashField.attemptWorkers);
    assert.deepEqual(parseAttemptWorkers(field), [{ attempt: 1, worker: 'host:1', startedAt: 1000 + i }]);
  }
  assert.deepEqual(errors, []);
  connection.disconnect();
});
