// The exporter's in-memory book: writes are netted between commits, so a job that is activated and
// finished before the next commit costs only the removal of what Redis already held.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CommitOp,
  LifecycleBook,
  type LookupResult,
  type StreamEvent,
} from '../src/metrics/lifecycle-book.js';

const jp = 'p:q:jobbers:';
const mp = 'p:jobbers:metrics:';
const keys = { jobbersPrefix: jp, metricsPrefix: mp, queue: 'q', bucketBounds: [0.1, 1, 10] };

let seq = 0;
function ev(event: string, jobId: string, extra = '', ms = 1000): StreamEvent {
  seq += 1;
  return { id: `${ms}-${seq}`, ms, event, jobId, extra };
}

function noLookups(): LookupResult {
  return { committed: new Map(), takenBy: new Map(), yieldMarks: new Map() };
}

function opsBy(ops: CommitOp[], command: string, key: string): string[] {
  return ops.filter((op) => op.command === command && op.key === key).flatMap((op) => op.args);
}

function counter(ops: CommitOp[], metric: string, field: string): number {
  const args = opsBy(ops, 'HINCRBY', mp + metric);
  let total = 0;
  for (let i = 0; i < args.length; i += 2) if (args[i] === field) total += Number(args[i + 1]);
  return total;
}

test('a job submitted, run and completed between two commits leaves no index or set write', () => {
  const book = new LifecycleBook(keys, ['default']);
  const events = [
    ev('added', '1', 'demo'),
    ev('waiting', '1'),
    ev('active', '1', 'waiting'),
    ev('completed', '1', 'active'),
  ];
  const lookups = noLookups();
  lookups.committed.set('1', { state: null, task: 'demo', sinceMs: 0 });
  lookups.takenBy.set('1', 'default@host:1');
  book.prepare(events).apply(lookups);
  const ops = book.commitOps();
  for (const { command, key } of ops)
    assert.ok(!key.startsWith(`${jp}avail`) && key !== `${jp}idx`, `${command} ${key}`);
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|created'), 1);
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|completed'), 1);
  assert.equal(counter(ops, 'jobbers_tasks_selected_total', 'q|demo|default'), 1);
});

test('a job available at the last commit costs one removal from each structure when it finishes', () => {
  const book = new LifecycleBook(keys, ['default']);
  const first = [ev('added', '7', 'demo', 1000), ev('waiting', '7', '', 1000)];
  const lookups = noLookups();
  lookups.committed.set('7', { state: null, task: 'demo', sinceMs: 0 });
  book.prepare(first).apply(lookups);
  const submitted = book.commitOps();
  assert.deepEqual(opsBy(submitted, 'ZADD', `${jp}avail:demo`), ['1000', '7']);
  assert.deepEqual(opsBy(submitted, 'HSET', `${jp}idx`), ['7', 'w|demo']);
  book.committedOps();

  const taken = noLookups();
  taken.takenBy.set('7', 'default@host:1');
  book.prepare([ev('active', '7', 'waiting', 1500), ev('completed', '7', 'active', 1600)]).apply(taken);
  const finished = book.commitOps();
  assert.deepEqual(opsBy(finished, 'ZREM', `${jp}avail:demo`), ['7']);
  assert.deepEqual(opsBy(finished, 'HDEL', `${jp}idx`), ['7']);
  assert.deepEqual(opsBy(finished, 'ZADD', `${jp}running:demo`), []);
  assert.deepEqual(opsBy(finished, 'ZREM', `${jp}running:demo`), []);
  const timeInQueue = opsBy(finished, 'HINCRBYFLOAT', `${mp}jobbers_time_in_queue_seconds`);
  assert.deepEqual(timeInQueue, ['q|demo|default|sum', '0.5']);
  assert.equal(counter(finished, 'jobbers_time_in_queue_seconds', 'q|demo|default|b1'), 1);
});

test('a job still running at a commit is written as running, and its index says so', () => {
  const book = new LifecycleBook(keys, []);
  const lookups = noLookups();
  lookups.committed.set('3', { state: 'w', task: 'demo', sinceMs: 900 });
  lookups.takenBy.set('3', 'other@host:2');
  book.prepare([ev('active', '3', 'waiting', 1000)]).apply(lookups);
  const ops = book.commitOps();
  assert.deepEqual(opsBy(ops, 'ZADD', `${jp}running:demo`), ['1000', '3']);
  assert.deepEqual(opsBy(ops, 'HSET', `${jp}idx`), ['3', 'a|demo']);
  assert.deepEqual(opsBy(ops, 'ZREM', `${jp}avail:demo`), ['3']);
  assert.equal(
    counter(ops, 'jobbers_tasks_selected_total', 'q|demo|unknown'),
    1,
    'roles not configured are unknown',
  );
});

test('a yield mark is consumed once, and only up to the marks Redis held', () => {
  const book = new LifecycleBook(keys, []);
  const lookups = noLookups();
  lookups.committed.set('5', { state: 'a', task: 'demo', sinceMs: 0 });
  lookups.yieldMarks.set('5', 1);
  book
    .prepare([ev('waiting', '5', 'active'), ev('active', '5', 'waiting'), ev('waiting', '5', 'active')])
    .apply(lookups);
  const ops = book.commitOps();
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|yielded'), 1);
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|failed-with-retries'), 1);
  assert.deepEqual(opsBy(ops, 'JOBBERS_CONSUME_YIELDS', `${jp}yields`), ['5', '1']);
});

test('a lease expiry (waiting from active, then stalled) is timed-out, not a retry', () => {
  const book = new LifecycleBook(keys, []);
  const lookups = noLookups();
  lookups.committed.set('9', { state: 'a', task: 'demo', sinceMs: 0 });
  book.prepare([ev('waiting', '9', 'active'), ev('stalled', '9')]).apply(lookups);
  const ops = book.commitOps();
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|timed-out'), 1);
  assert.equal(counter(ops, 'jobbers_tasks_timed_out_total', 'q|demo'), 1);
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|failed-with-retries'), 0);
});

test('lookups ask only for what the book does not already know', () => {
  const book = new LifecycleBook(keys, []);
  const lookups = noLookups();
  lookups.committed.set('1', { state: null, task: 'demo', sinceMs: 0 });
  book.prepare([ev('added', '1', 'demo'), ev('waiting', '1')]).apply(lookups);
  const request = book.prepare([
    ev('active', '1', 'waiting'),
    ev('waiting', '2', 'active'),
    ev('delayed', '1'),
  ]).request;
  assert.deepEqual(request.unknownJobs, ['2']);
  assert.deepEqual(request.activatedJobs, ['1']);
  assert.deepEqual(request.maybeYielded.sort(), ['1', '2']);
});

test('with one role serving the queue, activations need no lookup of who took them', () => {
  const book = new LifecycleBook(keys, ['default']);
  const lookups = noLookups();
  lookups.committed.set('4', { state: 'w', task: 'demo', sinceMs: 900 });
  const batch = book.prepare([ev('active', '4', 'waiting', 1000)], { soleRole: 'default' });
  assert.deepEqual(batch.request.activatedJobs, []);
  batch.apply(lookups);
  const ops = book.commitOps();
  assert.equal(counter(ops, 'jobbers_tasks_selected_total', 'q|demo|default'), 1);
  assert.equal(counter(ops, 'jobbers_time_in_queue_seconds', 'q|demo|default|count'), 1);
});

test('a job added after the last recount is new: no lookup; one added before it may be counted already', () => {
  const book = new LifecycleBook(keys, []);
  const counted = { id: '1000-5', ms: 1000, event: 'added', jobId: 'old', extra: 'demo' };
  const fresh = { id: '2000-0', ms: 2000, event: 'added', jobId: 'new', extra: 'demo' };
  const batch = book.prepare([counted, fresh, ev('waiting', 'new', '', 2000)], { countedUntil: '1500-0' });
  assert.deepEqual(batch.request.unknownJobs, ['old']);
  const lookups = noLookups();
  lookups.committed.set('old', { state: 'w', task: 'demo', sinceMs: 900 });
  batch.apply(lookups);
  const ops = book.commitOps();
  assert.deepEqual(opsBy(ops, 'ZADD', `${jp}avail:demo`), ['2000', 'new']);
  assert.deepEqual(opsBy(ops, 'HSET', `${jp}idx`), ['new', 'w|demo']);
});

test('past its memory bound the book forgets after a commit and asks Redis again', () => {
  const book = new LifecycleBook(keys, [], 2);
  const lookups = noLookups();
  const events = ['1', '2', '3'].flatMap((id) => [ev('added', id, 'demo'), ev('waiting', id)]);
  book.prepare(events).apply(lookups);
  assert.deepEqual(book.prepare([ev('active', '1', 'waiting')]).request.unknownJobs, []);
  book.commitOps();
  book.committedOps();
  assert.deepEqual(book.prepare([ev('active', '1', 'waiting')]).request.unknownJobs, ['1']);
});

test('queue-wide events that name no job ask Redis nothing (the lookup reply stays aligned)', () => {
  const book = new LifecycleBook(keys, []);
  const request = book.prepare([ev('drained', ''), ev('waiting', '8', 'active'), ev('paused', '')]).request;
  assert.deepEqual(request.unknownJobs, ['8']);
  assert.deepEqual(request.maybeYielded, ['8']);
});

test('the recount boundary orders ids within one millisecond by sequence number, not by text', () => {
  const book = new LifecycleBook(keys, []);
  const added = (id: string, jobId: string) => ({
    id,
    ms: Number(id.split('-')[0]),
    event: 'added',
    jobId,
    extra: 'demo',
  });
  const request = book.prepare(
    [
      added('1500-9', 'before'),
      added('1500-10', 'after'),
      added('1500-2', 'equal-ms-lower'),
      added('1499-99', 'earlier'),
    ],
    { countedUntil: '1500-9' },
  ).request;
  assert.deepEqual(request.unknownJobs.sort(), ['before', 'earlier', 'equal-ms-lower']);
});

test('a job activated and then waiting again in one batch may have yielded, whatever prev says', () => {
  const book = new LifecycleBook(keys, []);
  const request = book.prepare([
    ev('active', '9', 'waiting'),
    ev('waiting', '9'),
    ev('waiting', '10'),
  ]).request;
  assert.deepEqual(request.maybeYielded, ['9']);
});

test('past its bound the book forgets the jobs it learned longest ago, not every job at once', () => {
  const book = new LifecycleBook(keys, ['default'], 100);
  const jobs = Array.from({ length: 120 }, (_, i) => String(i));
  book.prepare(jobs.flatMap((id) => [ev('added', id, 'demo'), ev('waiting', id)])).apply(noLookups());
  book.commitOps();
  book.committedOps();
  assert.equal(book.rememberedJobs, 75, 'down to three quarters of the bound');
  // The newest jobs are still known: an event for one needs no lookup.
  assert.deepEqual(
    book.prepare([ev('active', '119', 'waiting')], { soleRole: 'default' }).request.unknownJobs,
    [],
  );
  assert.deepEqual(
    book.prepare([ev('active', '0', 'waiting')], { soleRole: 'default' }).request.unknownJobs,
    ['0'],
  );
});

test('a batch is applied only with the answer to its own request, once, and before the book changes', () => {
  const book = new LifecycleBook(keys, []);
  const first = book.prepare([ev('added', '1', 'demo'), ev('waiting', '1')]);
  const second = book.prepare([ev('active', '1', 'waiting')]);
  first.apply(noLookups());
  assert.throws(() => first.apply(noLookups()), /applied already/);
  assert.throws(() => second.apply(noLookups()), /changed since this batch was prepared/);
  const again = book.prepare([ev('active', '1', 'waiting')]);
  book.commitOps();
  book.committedOps();
  assert.throws(() => again.apply(noLookups()), /changed since this batch was prepared/, 'a commit too');
  book.prepare([ev('active', '1', 'waiting')]).apply(noLookups());
  assert.deepEqual(opsBy(book.commitOps(), 'HSET', `${jp}idx`), ['1', 'a|demo']);
});

test('a job delayed to a time its rate-limit marks name is rate-limited, not delayed, until it is available again', () => {
  const book = new LifecycleBook(keys, ['default']);
  const lookups = noLookups();
  lookups.committed.set('rl', { state: 'a', task: 'demo', sinceMs: 900 });
  const first = book.prepare([ev('delayed', 'rl', '5000', 1000)], { soleRole: 'default' });
  assert.deepEqual(first.request.delayedJobs, ['rl']);
  // The hash names an older rate-limited time and this one: the event's time decides.
  lookups.rateLimitMarks = new Map([['rl', '3000 5000']]);
  first.apply(lookups);
  let ops = book.commitOps();
  assert.deepEqual(opsBy(ops, 'ZADD', `${jp}ratelimited:demo`), ['5000', 'rl']);
  assert.deepEqual(opsBy(ops, 'ZREM', `${jp}running:demo`), ['rl']);
  assert.deepEqual(opsBy(ops, 'HSET', `${jp}idx`), ['rl', 'r|demo']);
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|rate-limited'), 1);
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|failed-with-backoff'), 0);
  book.committedOps();

  book.prepare([ev('waiting', 'rl', 'delayed', 5001)]).apply(noLookups());
  ops = book.commitOps();
  assert.deepEqual(opsBy(ops, 'ZREM', `${jp}ratelimited:demo`), ['rl']);
  assert.deepEqual(opsBy(ops, 'ZADD', `${jp}avail:demo`), ['5001', 'rl']);
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|rate-limit-ended'), 1);
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|backoff-recurred'), 0);
});

test('a job delayed to a time its marks do not name (a backoff after a rate limit) is an ordinary delay', () => {
  const book = new LifecycleBook(keys, ['default']);
  const lookups = noLookups();
  lookups.committed.set('bo', { state: 'a', task: 'demo', sinceMs: 900 });
  lookups.rateLimitMarks = new Map([['bo', '3000']]);
  book.prepare([ev('delayed', 'bo', '30000', 1000)], { soleRole: 'default' }).apply(lookups);
  const ops = book.commitOps();
  assert.deepEqual(opsBy(ops, 'ZADD', `${jp}ratelimited:demo`), []);
  assert.deepEqual(opsBy(ops, 'HSET', `${jp}idx`), ['bo', 'd|demo']);
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|failed-with-backoff'), 1);
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|rate-limited'), 0);
});

test('a rate-limited job removed while it waits leaves the rate-limited set', () => {
  const book = new LifecycleBook(keys, []);
  const lookups = noLookups();
  lookups.committed.set('gone', { state: 'r', task: 'demo', sinceMs: 0 });
  book.prepare([ev('removed', 'gone', 'delayed', 1000)]).apply(lookups);
  const ops = book.commitOps();
  assert.deepEqual(opsBy(ops, 'ZREM', `${jp}ratelimited:demo`), ['gone']);
  assert.deepEqual(opsBy(ops, 'HDEL', `${jp}idx`), ['gone']);
  assert.equal(counter(ops, 'jobbers_job_transitions_total', 'q|demo|removed'), 1);
});
