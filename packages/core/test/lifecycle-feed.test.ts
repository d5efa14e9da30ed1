// The live feed behind GET /v1/events: its direct reader (the exporter's decoder on a connection of
// its own), its ioredis reader and the batches of the lifecycle exporter this process leads give the
// same transitions and progress reports, task types included for jobs added before the feed started
// (read from their hashes, or known to the exporter's book), across a partitioned queue's streams,
// rate-limited moves told from other delays; the feed takes an exporter batch only where it follows
// on from where the feed stands, and reads past a gap itself; and a feed started afresh (a restarted
// manager) resumes after a given id with exactly what followed, progress reports included.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { DelayedError, Queue, Worker } from 'bullmq';
import { pino } from 'pino';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';
import { moveToDelayedRateLimited } from '../src/bullmq/rate-limited-move.js';
import { type FeedEvent, isProgressEvent, LifecycleFeed } from '../src/lifecycle-feed.js';
import { type ExporterEntriesListener, LifecycleExporter } from '../src/metrics/exporter.js';
import { createRedisConnection } from '../src/redis.js';

const closing: (() => Promise<void> | void)[] = [];
// Registered first, so run before the server stops.
after(async () => {
  for (const close of closing.reverse()) await close();
});
const fixture = useRedisServer();

const logger = pino({ level: 'silent' });

/** A connection, BullMQ queues and workers on a prefix of their own, closed after the tests. */
function stackOn(prefix: string) {
  const connection = createRedisConnection(fixture.server.url, { blocking: true });
  connection.on('error', () => {});
  closing.push(() => connection.disconnect());
  const queue = (name: string) => {
    const q = new Queue(name, { connection, prefix });
    closing.push(() => q.close());
    return q;
  };
  /** Jobs held back once by a rate limit (rateLimitOnce in their data). */
  const heldBack = new Set<string>();
  /**
   * Runs `name`'s jobs: a job whose data has rateLimitOnce is held back by a rate limit for 100 ms
   * at its first activation; one whose data has failOnce fails its first attempt; one whose data has
   * `report` reports it as its progress first.
   */
  const work = (name: string) => {
    const workerConnection = connection.duplicate({ maxRetriesPerRequest: null });
    const worker = new Worker(
      name,
      async (job, token) => {
        if (job.data.rateLimitOnce && !heldBack.has(job.id!)) {
          heldBack.add(job.id!);
          await moveToDelayedRateLimited(connection, prefix, job, token!, 100);
          throw new DelayedError();
        }
        if (job.data.report !== undefined) await job.updateProgress(job.data.report);
        if (job.data.failOnce && job.attemptsMade === 0) throw new Error('first attempt fails');
        return { k: job.data.k, padding: 'x'.repeat(500) };
      },
      { connection: workerConnection, prefix, concurrency: 4 },
    );
    closing.push(async () => {
      await worker.close();
      workerConnection.disconnect();
    });
  };
  return { connection, queue, work };
}

/** Follows every transition of `feed`'s queues into a list. */
async function collect(feed: LifecycleFeed, queues: string[], afterId?: string) {
  const events: FeedEvent[] = [];
  const stop = await feed.follow({
    filter: {},
    queues,
    afterId,
    replayLimit: 1000,
    maxPending: 10_000,
    onBatch: (batch) => events.push(...batch),
    onOverflow: () => assert.fail('the feed overflowed'),
  });
  closing.push(async () => {
    stop();
    await feed.stop();
  });
  return events;
}

const kindOf = (e: FeedEvent) => (isProgressEvent(e) ? 'progress' : e.transition);

const byPosition = (a: FeedEvent, b: FeedEvent) =>
  a.id.localeCompare(b.id) || a.taskId.localeCompare(b.taskId) || kindOf(a).localeCompare(kindOf(b));

/** What a job with index k reports as its progress: an object, a number, or nothing. */
const reportOf = (k: number) =>
  k % 3 === 1 ? { k, note: 'ünï "q"\n', big: 'x'.repeat(2000) } : k % 3 === 2 ? k * 10 : undefined;

test("the direct and the ioredis reader and the exporter's batches give the same transitions and progress of a partitioned queue, task types included", {
  timeout: 60_000,
}, async () => {
  const prefix = uniquePrefix('feed');
  const { connection, queue, work } = stackOn(prefix);
  const partitions = {
    storageQueues: (q: string) => (q === 'q' ? ['q-p0', 'q-p1'] : [q]),
    queueOf: (storage: string) => (storage.startsWith('q-') ? 'q' : storage),
  };
  const p0 = queue('q-p0');
  const p1 = queue('q-p1');
  // Added before the feeds start: their task types come from the jobs' hashes.
  const names = new Map<string, string>();
  for (const [k, partition] of [p0, p1, p0, p1, p0, p1, p0, p1, p0, p1, p0, p1].entries()) {
    const name = k % 3 === 0 ? 'démo.ünïcode' : 'demo.echo';
    const job = await partition.add(
      name,
      { k, failOnce: k % 4 === 0, rateLimitOnce: k % 5 === 1, report: reportOf(k) },
      { attempts: 2, jobId: `j${k}` },
    );
    names.set(job.id!, name);
  }
  // The exporter this process leads: small batches, so the feed takes many; the count of entries it
  // handed shows it did.
  const exporter = new LifecycleExporter({
    connection,
    prefix,
    queues: ['q-p0', 'q-p1'],
    queueLabel: partitions.queueOf,
    batchSize: 5,
    minTurnMs: 5,
  }).start();
  closing.push(() => exporter.stop());
  let handed = 0;
  const counted = {
    onEntries: (listener: ExporterEntriesListener) =>
      exporter.onEntries((batch) => {
        handed += batch.entries.length;
        listener(batch);
      }),
  };
  const feeds = (['direct', 'ioredis', 'exporter'] as const).map(
    (reader) =>
      new LifecycleFeed({
        connection,
        prefix,
        queues: ['q'],
        partitions,
        logger,
        reader: reader === 'ioredis' ? 'ioredis' : 'direct',
        exporter: reader === 'exporter' ? counted : undefined,
        blockMs: 200,
        minReadIntervalMs: 20,
        batchSize: 7,
      }),
  );
  const seen = await Promise.all(feeds.map((feed) => collect(feed, ['q'])));
  // Both readers follow the streams once they see a job added now.
  const marker = await p1.add('demo.marker', { k: -1 }, { jobId: 'm1' });
  names.set(marker.id!, 'demo.marker');
  await waitFor(() => seen.every((events) => events.some((e) => e.taskId === marker.id)), {
    what: 'both feeds to see the marker',
  });
  work('q-p0');
  work('q-p1');
  const finished = (events: FeedEvent[]) =>
    events.filter((e) => !isProgressEvent(e) && e.transition === 'completed').length === names.size;
  await waitFor(() => seen.every(finished), { what: 'both feeds to see every job complete' });
  const [direct, viaIoredis, viaExporter] = seen.map((events) => [...events].sort(byPosition));
  assert.deepEqual(direct, viaIoredis);
  assert.deepEqual(viaExporter, direct, "the exporter's batches give what the feed reads itself");
  assert.ok(handed > 0, 'the exporter handed its batches');
  for (const e of direct!) {
    assert.equal(e.queue, 'q', 'a partition reports its queue');
    assert.equal(e.task, names.get(e.taskId), `the task type of ${e.taskId}`);
    assert.equal(e.at, Number(e.id.split('-')[0]));
  }
  const transitions = new Set(direct!.map(kindOf));
  for (const t of ['created', 'activated', 'failed-with-retries', 'completed'] as const)
    assert.ok(transitions.has(t), `the feed reported ${t}`);
  // A job held back by its rate limit, then run (j1 does not fail; it reports once it runs).
  assert.deepEqual(direct!.filter((e) => e.taskId === 'j1').map(kindOf), [
    'activated',
    'rate-limited',
    'rate-limit-ended',
    'activated',
    'progress',
    'completed',
  ]);
  const limited = direct!.filter((e) => kindOf(e) === 'rate-limited');
  assert.deepEqual(
    limited.map((e) => e.taskId).sort(),
    ['j1', 'j11', 'j6'],
    'every held-back job, and nothing else, is rate-limited',
  );
  for (const e of limited) assert.ok(!isProgressEvent(e) && e.state === 'delayed');
  // Each attempt of a reporting job reported its value once (a failed first attempt reported too).
  const reports = direct!.filter(isProgressEvent);
  for (let k = 0; k < 12; k++) {
    const mine = reports.filter((e) => e.taskId === `j${k}`);
    const attempts = k % 4 === 0 ? 2 : 1;
    const report = reportOf(k);
    assert.equal(mine.length, report === undefined ? 0 : attempts, `the progress reports of j${k}`);
    for (const e of mine) assert.deepEqual(e.progress, report, `the progress of j${k}`);
  }
});

test("a feed takes the exporter's batches that follow on from where it stands, and reads past a gap itself", {
  timeout: 30_000,
}, async () => {
  const prefix = uniquePrefix('feed-exporter');
  const { connection, queue } = stackOn(prefix);
  const q = queue('x');
  let hand: ExporterEntriesListener | undefined;
  const feed = new LifecycleFeed({
    connection,
    prefix,
    queues: ['x'],
    logger,
    blockMs: 200,
    minReadIntervalMs: 20,
    exporter: {
      onEntries(listener) {
        hand = listener;
        return () => {
          hand = undefined;
        };
      },
    },
  });
  const events = await collect(feed, ['x']);
  await q.add('demo.one', {}, { jobId: 'a' });
  await waitFor(() => events.some((e) => e.taskId === 'a'), { what: 'the feed to read a job itself' });
  const [[lastId]] = (await connection.xrevrange(`${prefix}:x:events`, '+', '-', 'COUNT', 1)) as [
    [string, string[]],
  ];
  const [ms, seq] = lastId.split('-').map(Number) as [number, number];
  // An entry of a job the feed never saw added: its task type is the exporter book's.
  const next = { id: `${ms}-${seq + 1}`, ms, event: 'active', jobId: 'b', extra: 'waiting' };
  const taskOf = (jobId: string) => (jobId === 'b' ? 'demo.from-book' : undefined);
  assert.ok(hand, 'the feed listens to the exporter');
  hand({ queue: 'x', afterId: lastId, entries: [next], taskOf });
  // The same batch again (a turn read again after it failed): nothing twice.
  hand({ queue: 'x', afterId: lastId, entries: [next], taskOf });
  // A batch after entries the feed has not seen: left to the feed's own reads.
  const ahead = `${ms + 60_000}-0`;
  hand({
    queue: 'x',
    afterId: ahead,
    entries: [{ id: `${ms + 60_000}-1`, ms: ms + 60_000, event: 'active', jobId: 'ghost', extra: 'waiting' }],
    taskOf,
  });
  await q.add('demo.three', {}, { jobId: 'c' });
  await waitFor(() => events.some((e) => e.taskId === 'c'), { what: 'the feed to read past the gap' });
  assert.deepEqual(
    events.filter((e) => e.taskId === 'b').map((e) => [e.id, kindOf(e), e.task]),
    [[next.id, 'activated', 'demo.from-book']],
  );
  assert.ok(!events.some((e) => e.taskId === 'ghost'), 'a batch after a gap is not taken');
  assert.deepEqual(
    events.filter((e) => e.taskId === 'c').map((e) => [kindOf(e), e.task]),
    [['created', 'demo.three']],
  );
});

test('a feed started afresh resumes after an id with exactly what followed, then live', {
  timeout: 60_000,
}, async () => {
  const prefix = uniquePrefix('feed-resume');
  const { connection, queue, work } = stackOn(prefix);
  const q = queue('r');
  const options = { connection, prefix, queues: ['r'], logger, blockMs: 200, minReadIntervalMs: 20 };
  const first = new LifecycleFeed(options);
  const before = await collect(first, ['r']);
  const marker = await q.add('demo.marker', {});
  await waitFor(() => before.some((e) => e.taskId === marker.id), { what: 'the first feed to follow' });
  work('r');
  const jobs = await q.addBulk(
    Array.from({ length: 8 }, (_, k) => ({
      name: 'demo.echo',
      data: { k, failOnce: k === 3, report: reportOf(k) },
      opts: { attempts: 2 },
    })),
  );
  const completed = (events: FeedEvent[]) =>
    events.filter((e) => !isProgressEvent(e) && e.transition === 'completed').length;
  await waitFor(() => completed(before) === jobs.length + 1, {
    what: 'the first feed to see every job complete',
  });
  await first.stop();

  // The restarted manager's feed, resuming after the fifth transition the first one sent.
  const resumeAfter = before[4]!;
  const second = new LifecycleFeed(options);
  const resumed = await collect(second, ['r'], resumeAfter.id);
  assert.ok(before.some(isProgressEvent), 'the jobs reported progress');
  assert.deepEqual(resumed, before.slice(5), 'the replay is what followed the id, in order');
  const live = await q.add('demo.echo', { k: 99 });
  await waitFor(() => resumed.some((e) => e.taskId === live.id && kindOf(e) === 'completed'), {
    what: 'the resumed feed to see a new job complete',
  });
  const ids = resumed.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, 'no transition twice');
  assert.deepEqual(
    resumed.filter((e) => e.taskId === live.id).map((e) => [kindOf(e), e.task]),
    [
      ['created', 'demo.echo'],
      ['activated', 'demo.echo'],
      ['completed', 'demo.echo'],
    ],
  );
});
