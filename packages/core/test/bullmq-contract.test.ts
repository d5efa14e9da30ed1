// The contract between Jobbers and BullMQ's internals (packages/core/src/bullmq/): every behaviour of
// BullMQ that Jobbers relies on beyond its public API, pinned against a real Redis. A BullMQ upgrade
// that changes one of them fails here first, with the behaviour named.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, test } from 'node:test';
import {
  addJob,
  adjustAttemptsStarted,
  bullmqConnection,
  extendLeaseWithHeartbeat,
  GatedWorker,
  isLostJobError,
  type JobStateStore,
  jobFromHash,
  jobHashField,
  jobKey,
  jobLockKey,
  jobStateSource,
  moveToDelayedRateLimited,
  queueOwnKey,
  queueOwnKeyNames,
  queueRemoveJob,
  readJobCounts,
  readJobFinish,
  readLockTokens,
} from '@jobbers/core';
import { type Job, Queue, Worker } from 'bullmq';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';

const fixture = useRedisServer({ blocking: true });
const task = 'demo.job';
let prefix: string;
let queue: Queue;
let worker: Worker;

beforeEach(async () => {
  prefix = uniquePrefix('bc');
  queue = new Queue('q', { connection: fixture.redis, prefix });
  worker = new Worker('q', null, {
    connection: fixture.redis,
    prefix,
    lockDuration: 5000,
    stalledInterval: 100,
    name: 'contract',
  });
  await worker.waitUntilReady();
});
afterEach(async () => {
  await worker.close(true);
  await queue.close();
});

type StreamEntry = Record<string, string>;

/** The queue's event stream entries for one job, in order, with every field. */
async function eventsOf(id: string): Promise<StreamEntry[]> {
  const entries = await fixture.redis.xrange(queueOwnKey(prefix, 'q', 'events'), '-', '+');
  return entries
    .map(([, fields]) => {
      const entry: StreamEntry = {};
      for (let i = 0; i < fields.length; i += 2) entry[fields[i]!] = fields[i + 1]!;
      return entry;
    })
    .filter((entry) => entry.jobId === id);
}

/** The fields the lifecycle exporter reads of each event: event, and name (added) or prev (others). */
function whatTheExporterReads(entries: StreamEntry[]): string[] {
  return entries.map((e) => `${e.event}:${(e.event === 'added' ? e.name : e.prev) ?? ''}`);
}

async function activate(): Promise<{ job: Job; token: string }> {
  const token = randomUUID();
  const job = (await worker.getNextJob(token, { block: false })) as Job | undefined;
  assert.ok(job, 'a job was activated');
  return { job, token };
}

test('event stream: add, activate and complete write added, waiting, active, completed', async () => {
  const added = await queue.add(task, { n: 1 });
  const { job, token } = await activate();
  await job.moveToCompleted('done', token, false);
  assert.deepEqual(whatTheExporterReads(await eventsOf(added.id!)), [
    `added:${task}`,
    'waiting:',
    'active:waiting',
    'completed:active',
  ]);
});

test('event stream: a failed attempt with retries and no backoff goes back to waiting from active', async () => {
  const added = await queue.add(task, {}, { attempts: 2 });
  const { job, token } = await activate();
  await job.moveToFailed(new Error('boom'), token, false);
  const events = whatTheExporterReads(await eventsOf(added.id!));
  assert.deepEqual(events.slice(2), ['active:waiting', 'waiting:active']);
});

test('event stream: a backoff is delayed, then waiting from delayed once it expires', async () => {
  const added = await queue.add(task, {}, { attempts: 2, backoff: { type: 'fixed', delay: 50 } });
  const { job, token } = await activate();
  await job.moveToFailed(new Error('boom'), token, false);
  await waitFor(
    async () => {
      await worker.getNextJob(randomUUID(), { block: false });
      return (await eventsOf(added.id!)).some((e) => e.event === 'waiting' && e.prev === 'delayed');
    },
    { what: 'the backoff to expire' },
  );
  const events = whatTheExporterReads(await eventsOf(added.id!));
  // `delayed` carries no prev: the exporter knows the job was active from its own index.
  assert.deepEqual(events.slice(2, 5), ['active:waiting', 'delayed:', 'waiting:delayed']);
});

test('event stream: the last failed attempt writes failed from active, then retries-exhausted', async () => {
  const added = await queue.add(task, {}, { attempts: 1 });
  const { job, token } = await activate();
  await job.moveToFailed(new Error('boom'), token, false);
  const entries = await eventsOf(added.id!);
  assert.deepEqual(
    entries.slice(2).map((e) => e.event),
    ['active', 'failed', 'retries-exhausted'],
  );
  assert.equal(entries.find((e) => e.event === 'failed')?.prev, 'active');
});

test('event stream: a lease that expires writes waiting from active immediately followed by stalled', async () => {
  const added = await queue.add(task, {});
  const { job } = await activate();
  await fixture.redis.del(jobLockKey(prefix, 'q', job.id!));
  await waitFor(
    async () => {
      await worker.moveStalledJobsToWait();
      return (await eventsOf(added.id!)).some((e) => e.event === 'stalled');
    },
    { what: 'the stalled checker to move the job back' },
  );
  const events = whatTheExporterReads(await eventsOf(added.id!));
  assert.deepEqual(events.slice(2), ['active:waiting', 'waiting:active', 'stalled:']);
});

test('event stream: give-back moves are waiting or delayed from active', async () => {
  const first = await queue.add(task, {});
  const a = await activate();
  await a.job.moveToWait(a.token);
  const b = await activate();
  await b.job.moveToDelayed(Date.now() + 60_000, b.token);
  assert.deepEqual(whatTheExporterReads(await eventsOf(first.id!)).slice(2), [
    'active:waiting',
    'waiting:active',
    'active:waiting',
    'delayed:',
  ]);
});

test('rate-limited move: delayed with the exact time marked in the hash, in the event and the score, no attempt used', async () => {
  const added = await queue.add(task, {}, { attempts: 3 });
  const a = await activate();
  const before = Date.now();
  const runAt = await moveToDelayedRateLimited(fixture.redis, prefix, a.job, a.token, 60_000);
  assert.ok(runAt >= before + 60_000 && runAt <= Date.now() + 60_000);
  const [event] = (await eventsOf(added.id!)).filter((e) => e.event === 'delayed');
  assert.equal(event?.delay, String(runAt), 'the delayed event carries the time as delay');
  const score = Number(await fixture.redis.zscore(queueOwnKey(prefix, 'q', 'delayed'), added.id!));
  assert.equal(
    Math.floor(score / 0x1000),
    runAt,
    'the delayed score is the time * 0x1000 plus a tie-breaker',
  );
  const key = jobKey(prefix, 'q', added.id!);
  const [marks, made, started] = await fixture.redis.hmget(
    key,
    jobHashField.rateLimitedUntil,
    jobHashField.attemptsMade,
    jobHashField.attemptsStarted,
  );
  assert.equal(marks, String(runAt));
  assert.equal(Number(made ?? 0), 0, 'no attempt made');
  assert.equal(Number(started), 1, 'the activation counted as started (the worker takes it back)');
  // A worker that lost the job is refused; its mark names a time the job is not delayed to.
  await assert.rejects(moveToDelayedRateLimited(fixture.redis, prefix, a.job, a.token, 5000), isLostJobError);
  assert.equal(
    Math.floor(Number(await fixture.redis.zscore(queueOwnKey(prefix, 'q', 'delayed'), added.id!)) / 0x1000),
    runAt,
  );
});

test('job hash: the fields Jobbers reads hold what it expects at each step', async () => {
  const delayed = await queue.add(task, {}, { delay: 60_000 });
  const prioritized = await queue.add(task, {}, { priority: 5 });
  assert.equal(await queue.getJobState(prioritized.id!), 'prioritized');
  const [name, timestamp, delay] = await fixture.redis.hmget(
    jobKey(prefix, 'q', delayed.id!),
    jobHashField.name,
    jobHashField.timestamp,
    jobHashField.delay,
  );
  assert.equal(name, task);
  assert.equal(Number(timestamp), delayed.timestamp);
  assert.equal(Number(delay), 60_000);

  const plain = await queue.add(task, { n: 2 }, { attempts: 2 });
  await queue.remove(prioritized.id!);
  const { job, token } = await activate();
  assert.equal(job.id, plain.id);
  const key = jobKey(prefix, 'q', job.id!);
  assert.equal(await fixture.redis.hget(key, jobHashField.attemptsStarted), '1', 'activation counts a start');
  assert.ok(Number(await fixture.redis.hget(key, jobHashField.processedOn)) > 0);
  assert.equal(await fixture.redis.hget(key, jobHashField.processedBy), 'contract', 'the worker name');
  await adjustAttemptsStarted(fixture.redis, prefix, 'q', job.id!, -1);
  assert.equal(await fixture.redis.hget(key, jobHashField.attemptsStarted), '0');
  await adjustAttemptsStarted(fixture.redis, prefix, 'q', job.id!, 1);

  await job.moveToCompleted('ok', token, false);
  const finish = await readJobFinish(fixture.redis, prefix, 'q', job.id!);
  assert.equal(finish.attemptsStarted, 1);
  assert.equal(finish.attemptsMade, 1, 'a finished attempt counts as made');
  assert.equal(finish.completed, true);
  assert.ok(finish.finishedOn && finish.finishedOn >= job.timestamp);

  const fields = await fixture.redis.hgetall(key);
  const rebuilt = jobFromHash(queue, fields, job.id!);
  assert.deepEqual(rebuilt.data, { n: 2 });
  assert.equal(rebuilt.returnvalue, 'ok');
  assert.equal(rebuilt.attemptsStarted, 1);
  assert.equal(rebuilt.processedOn, Number(fields[jobHashField.processedOn]));
});

test('lock: the lock key holds the token with the lease; a heartbeat extends it only for its holder', async () => {
  await queue.add(task, {});
  const { job, token } = await activate();
  const lock = jobLockKey(prefix, 'q', job.id!);
  assert.deepEqual(await readLockTokens(fixture.redis, prefix, [{ queue: 'q', id: job.id! }]), [token]);
  const ttl = await fixture.redis.pttl(lock);
  assert.ok(ttl > 0 && ttl <= 5000, `the lock expires with lockDuration (pttl ${ttl})`);

  await fixture.redis.sadd(queueOwnKey(prefix, 'q', 'stalled'), job.id!);
  const lease = { prefix, queue: 'q', id: job.id!, leaseMs: 60_000, nowMs: 1234 };
  assert.equal(await extendLeaseWithHeartbeat(fixture.redis, { ...lease, token: 'someone-else' }), false);
  assert.ok((await fixture.redis.pttl(lock)) <= 5000, 'another token extends nothing');
  assert.equal(await extendLeaseWithHeartbeat(fixture.redis, { ...lease, token }), true);
  assert.ok((await fixture.redis.pttl(lock)) > 5000, 'the holder extends the lease');
  assert.equal(await fixture.redis.sismember(queueOwnKey(prefix, 'q', 'stalled'), job.id!), 0);
  assert.equal(await fixture.redis.hget(jobKey(prefix, 'q', job.id!), jobHashField.lastHeartbeat), '1234');

  // BullMQ's own extendLocks uses the same key and token.
  assert.deepEqual(await worker.extendJobLocks([job.id!], [token], 5000), []);
  assert.deepEqual(await worker.extendJobLocks([job.id!], ['someone-else'], 5000), [job.id]);

  await fixture.redis.del(lock);
  assert.deepEqual(await readLockTokens(fixture.redis, prefix, [{ queue: 'q', id: job.id! }]), [null]);
  assert.equal(await extendLeaseWithHeartbeat(fixture.redis, { ...lease, token }), false);
});

test('lost job errors: moves by a worker that lost the job are refused with the messages matched', async () => {
  await queue.add(task, {});
  const { job, token } = await activate();
  const wrongToken = await job.moveToCompleted('x', 'not-the-holder', false).catch((e: unknown) => e);
  assert.ok(isLostJobError(wrongToken), `lock mismatch: ${(wrongToken as Error).message}`);
  await fixture.redis.del(jobLockKey(prefix, 'q', job.id!));
  const noLock = await job.moveToFailed(new Error('x'), token, false).catch((e: unknown) => e);
  assert.ok(isLostJobError(noLock), `missing lock: ${(noLock as Error).message}`);
  await queue.remove(job.id!);
  const gone = await job.moveToCompleted('x', token, false).catch((e: unknown) => e);
  assert.ok(isLostJobError(gone), `missing key: ${(gone as Error).message}`);
  assert.equal(isLostJobError(new Error('Connection is closed.')), false);
});

test('removal: removeJob in a MULTI answers 1 removed (or gone), 0 locked, and writes removed', async () => {
  const active = await queue.add(task, {});
  const waiting = await queue.add(task, {});
  await activate();
  const client = await bullmqConnection(queue);
  const removeIn = async (id: string) => {
    const transaction = client.multi();
    queueRemoveJob(queue, transaction, id);
    const replies = await transaction.exec();
    return replies?.[0]?.[1];
  };
  assert.equal(await removeIn(active.id!), 0, 'an active (locked) job is not removed');
  assert.equal(await removeIn(waiting.id!), 1);
  assert.equal(await fixture.redis.exists(jobKey(prefix, 'q', waiting.id!)), 0);
  assert.deepEqual(
    (await eventsOf(waiting.id!)).map((e) => [e.event, e.prev]),
    [
      ['added', undefined],
      ['waiting', undefined],
      ['removed', 'wait'],
    ],
  );
  assert.equal(await removeIn(waiting.id!), 1, 'a job already gone also answers 1');
});

test('adding on a pipeline: addJob adds the job with its id, as Queue.add does', async () => {
  const client = await bullmqConnection(queue);
  const pipeline = client.pipeline();
  const added = addJob(queue, pipeline, {
    id: 'chosen-id',
    name: task,
    data: { a: 1 },
    opts: { attempts: 3 },
  });
  const replies = await pipeline.exec();
  await added;
  assert.deepEqual(replies, [[null, 'chosen-id']]);
  const job = await queue.getJob('chosen-id');
  assert.equal(job?.name, task);
  assert.deepEqual(job?.data, { a: 1 });
  assert.equal(await job?.getState(), 'waiting');
  assert.deepEqual(whatTheExporterReads(await eventsOf('chosen-id')), [`added:${task}`, 'waiting:']);
});

test("queue key names: a job id never equals one of the queue's own keys", () => {
  for (const name of ['wait', 'active', 'events', 'meta', 'stalled', 'completed', 'prioritized'])
    assert.ok(queueOwnKeyNames.includes(name), name);
  assert.equal(queueOwnKey(prefix, 'q', 'wait'), `${prefix}:q:wait`);
  assert.equal(jobKey(prefix, 'q', 'id1'), `${prefix}:q:id1`);
  assert.equal(jobLockKey(prefix, 'q', 'id1'), `${prefix}:q:id1:lock`);
});

test('gated worker: a closed gate activates nothing; fetch-next hands over a job that adopt takes up', async () => {
  let open = false;
  let recorded = 0;
  const gated = new GatedWorker(
    'q',
    { connection: fixture.redis, prefix, lockDuration: 5000 },
    {
      mayActivate: () => open,
      beforeActivate: () => {
        recorded++;
        return undefined;
      },
    },
  );
  try {
    await gated.waitUntilReady();
    const first = await queue.add(task, {});
    const second = await queue.add(task, {});
    assert.equal(await gated.getNextJob('t1', { block: false }), undefined);
    assert.equal(await queue.getJobState(first.id!), 'waiting', 'the closed gate took nothing');
    open = true;
    const job = (await gated.getNextJob('t1', { block: false })) as Job;
    assert.equal(job.id, first.id);
    assert.equal(recorded, 1, 'beforeActivate runs right before the activation');
    const next = await job.moveToCompleted('ok', 't1', true);
    const adopted = await gated.adopt(next, 't1');
    assert.equal(adopted?.id, second.id);
    assert.equal(await queue.getJobState(second.id!), 'active');
    assert.deepEqual(await readLockTokens(fixture.redis, prefix, [{ queue: 'q', id: second.id! }]), ['t1']);
    assert.equal(await gated.adopt(undefined, 't1'), undefined, 'no hand-over: nothing to adopt');
    assert.equal((await gated.readJob(second.id!))?.id, second.id);
  } finally {
    await gated.close(true);
  }
});

test('state stores: the jobs of each state sit in the key and Redis type named for it', async () => {
  const done = await queue.add(task, {});
  const failed = await queue.add(task, {}, { attempts: 1 });
  const active = await queue.add(task, {});
  const a = await activate();
  await a.job.moveToCompleted('ok', a.token, false);
  const b = await activate();
  await b.job.moveToFailed(new Error('boom'), b.token, false);
  await activate();
  const waiting = await queue.add(task, {});
  const prioritized = await queue.add(task, {}, { priority: 3 });
  const delayed = await queue.add(task, {}, { delay: 60_000 });
  const members = async (store: JobStateStore) => {
    const { key, kind } = jobStateSource(prefix, 'q', store);
    assert.equal(await fixture.redis.type(key), kind === 'list' ? 'list' : 'zset', store);
    return kind === 'list' ? fixture.redis.lrange(key, 0, -1) : fixture.redis.zrange(key, 0, -1);
  };
  assert.deepEqual(await members('wait'), [waiting.id]);
  assert.deepEqual(await members('prioritized'), [prioritized.id]);
  assert.deepEqual(await members('delayed'), [delayed.id]);
  assert.deepEqual(await members('active'), [active.id]);
  assert.deepEqual(await members('completed'), [done.id]);
  assert.deepEqual(await members('failed'), [failed.id]);
  await queue.pause();
  assert.deepEqual(await members('wait'), [waiting.id], 'a paused queue keeps its waiting jobs in wait');
  assert.equal(
    await fixture.redis.hget(queueOwnKey(prefix, 'q', 'meta'), 'paused'),
    '1',
    'and is marked paused',
  );
});

test('job counts: the waiting jobs of a paused queue count as paused, as the paused list did', async () => {
  await queue.add(task, {});
  await queue.add(task, {}, { priority: 2 });
  const running = await readJobCounts(fixture.redis, prefix, 'q');
  assert.equal(running.waiting, 1);
  assert.equal(running.paused, 0);
  assert.equal(running.prioritized, 1);
  await queue.pause();
  const paused = await readJobCounts(fixture.redis, prefix, 'q');
  assert.equal(paused.waiting, 0);
  assert.equal(paused.paused, 1);
  assert.equal(paused.prioritized, 1, 'prioritized jobs stay prioritized');
  // A queue paused by BullMQ 5 holds its waiting jobs in the paused list until it is resumed.
  await fixture.redis.rpush(queueOwnKey(prefix, 'q', 'paused'), 'legacy');
  assert.equal((await readJobCounts(fixture.redis, prefix, 'q')).paused, 2);
  await queue.resume();
  const resumed = await readJobCounts(fixture.redis, prefix, 'q');
  assert.deepEqual([resumed.waiting, resumed.paused], [2, 0], 'resuming moves the paused list to wait');
});

test('incident retry: retrying a failed job writes waiting from failed, resets atm and keeps ats', async () => {
  const added = await queue.add(task, {}, { attempts: 1 });
  const { job, token } = await activate();
  await job.moveToFailed(new Error('boom'), token, false);
  const failed = (await queue.getJob(added.id!))!;
  await failed.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: false });
  assert.equal(await queue.getJobState(added.id!), 'waiting');
  const entries = await eventsOf(added.id!);
  assert.deepEqual(whatTheExporterReads(entries).at(-1), 'waiting:failed');
  const key = jobKey(prefix, 'q', added.id!);
  assert.equal(
    await fixture.redis.hget(key, jobHashField.attemptsStarted),
    '1',
    'ctx.attempt keeps counting',
  );
  assert.equal(Number((await fixture.redis.hget(key, jobHashField.attemptsMade)) ?? 0), 0);
});
