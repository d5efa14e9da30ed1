// The book against a model of Redis: random event sequences are applied and committed at random
// points, each commit's ops are played on an in-memory copy of the bookkeeping keys, and lookups are
// answered from that copy, as the exporter does. Where the commits fall must not change what Redis
// ends up holding, and after every commit the index and the sets must agree job by job.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CommitOp, LifecycleBook, type StreamEvent } from '../src/metrics/lifecycle-book.js';

const jp = 'p:q:jobbers:';
const keys = {
  jobbersPrefix: jp,
  metricsPrefix: 'p:jobbers:metrics:',
  queue: 'q',
  bucketBounds: [0.1, 1, 10],
};
const tasks = ['t1', 't2'];
const setKinds: Record<string, string> = { w: 'avail', a: 'running', f: 'incidents', r: 'ratelimited' };

/** The bookkeeping keys as plain maps: member or field to score or value. */
class ModelRedis {
  readonly keys = new Map<string, Map<string, string>>();

  get(key: string): Map<string, string> {
    let values = this.keys.get(key);
    if (!values) {
      values = new Map();
      this.keys.set(key, values);
    }
    return values;
  }

  play(ops: CommitOp[]) {
    for (const { command, key, args } of ops) {
      const values = this.get(key);
      if (command === 'ZADD') for (let i = 0; i < args.length; i += 2) values.set(args[i + 1]!, args[i]!);
      else if (command === 'HSET')
        for (let i = 0; i < args.length; i += 2) values.set(args[i]!, args[i + 1]!);
      else if (command === 'ZREM' || command === 'HDEL') for (const member of args) values.delete(member);
      else if (command === 'SADD') for (const member of args) values.set(member, '');
      else if (command === 'HINCRBY' || command === 'HINCRBYFLOAT')
        for (let i = 0; i < args.length; i += 2)
          values.set(args[i]!, String(Number(values.get(args[i]!) ?? 0) + Number(args[i + 1])));
      else if (command === 'JOBBERS_CONSUME_YIELDS')
        for (let i = 0; i < args.length; i += 2) {
          const left = Number(values.get(args[i]!) ?? 0) - Number(args[i + 1]);
          if (left > 0) values.set(args[i]!, String(left));
          else values.delete(args[i]!);
        }
      else throw new Error(`unexpected command ${command}`);
    }
  }

  /** Every key and value, sums rounded (float sums may differ in the last digits). */
  snapshot(): string[] {
    const lines: string[] = [];
    for (const [key, values] of this.keys)
      for (const [member, value] of values)
        if (value !== '' || !key.endsWith('tasks'))
          lines.push(`${key} ${member} ${Number(value).toFixed(6)}`);
        else lines.push(`${key} ${member}`);
    return lines.sort();
  }
}

function random(seed: number) {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
}

interface Scenario {
  batches: StreamEvent[][];
  /** Job names as their hashes hold them (a job added again may take another). */
  names: Map<string, string>;
  /** Yield marks workers left, by batch: added to Redis before the batch is read, each for a job that then moves back. */
  yields: string[][];
  /** Rate-limit marks workers left in job hashes, by batch: [job, delayed time], before the batch is read. */
  rateMarks: [string, string][][];
}

function scenario(seed: number): Scenario {
  const rand = random(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(rand() * items.length)]!;
  const jobs = Array.from({ length: 2 + Math.floor(rand() * 6) }, (_, i) => `j${i}`);
  const names = new Map(jobs.map((job) => [job, pick(tasks)]));
  // A removal drops the job's yield marks when it is committed, so a mark a removed job never used
  // could be seen or not depending on when that is: a scenario has marks or removals, not both.
  const withMarks = seed % 2 === 0;
  const kinds = ['added', 'waiting', 'active', 'completed', 'failed', 'delayed', 'stalled'];
  if (!withMarks) kinds.push('removed');
  const prevs = ['', 'active', 'waiting', 'delayed', 'failed'];
  let ms = 1000;
  let seq = 0;
  const batches: StreamEvent[][] = [];
  const yields: string[][] = [];
  const rateMarks: [string, string][][] = [];
  for (let b = 0; b < 10; b++) {
    const marks: string[] = [];
    const limited: [string, string][] = [];
    batches.push(
      Array.from({ length: Math.floor(rand() * 12) }, () => {
        const event = pick([...kinds, 'drained']);
        ms += Math.floor(rand() * 200);
        seq += 1;
        const jobId = event === 'drained' ? '' : pick(jobs);
        const extra =
          event === 'added' ? names.get(jobId)! : event === 'delayed' ? String(ms + 5000) : pick(prevs);
        // Half the delays are a rate limit's (the job's hash names their time), some marks name none.
        if (event === 'delayed' && rand() < 0.5) limited.push([jobId, extra]);
        if (rand() < 0.05 && jobId) limited.push([jobId, String(ms + 7)]);
        if (withMarks && (event === 'delayed' || (event === 'waiting' && extra === 'active')) && rand() < 0.5)
          marks.push(jobId);
        return { id: `${ms}-${seq}`, ms, event, jobId, extra };
      }),
    );
    yields.push(marks);
    rateMarks.push(limited);
  }
  return { batches, names, yields, rateMarks };
}

/** Plays the scenario, committing after the batches `commitAfter` says; returns Redis's final state. */
function play(s: Scenario, commitAfter: (batch: number) => boolean, checkEachCommit: boolean): ModelRedis {
  const redis = new ModelRedis();
  const book = new LifecycleBook(keys, ['default']);
  const hashMarks = new Map<string, string>();
  s.batches.forEach((events, b) => {
    for (const [job, time] of s.rateMarks[b]!)
      hashMarks.set(job, hashMarks.has(job) ? `${hashMarks.get(job)} ${time}` : time);
    for (const job of s.yields[b]!) {
      const yieldsKey = redis.get(`${jp}yields`);
      yieldsKey.set(job, String(Number(yieldsKey.get(job) ?? 0) + 1));
    }
    const batch = book.prepare(events, { countedUntil: '0-0' });
    const { request } = batch;
    const committed = new Map(
      request.unknownJobs.map((job) => {
        const indexed = redis.get(`${jp}idx`).get(job);
        if (!indexed) return [job, { state: null, task: s.names.get(job)!, sinceMs: 0 }];
        const [state, task] = indexed.split('|') as ['w', string];
        const since = state === 'w' ? Number(redis.get(`${jp}avail:${task}`).get(job) ?? 0) : 0;
        return [job, { state, task, sinceMs: since }];
      }),
    );
    batch.apply({
      committed,
      takenBy: new Map(request.activatedJobs.map((job) => [job, 'default@host:1'])),
      yieldMarks: new Map(
        request.maybeYielded.map((job) => [job, Number(redis.get(`${jp}yields`).get(job) ?? 0)]),
      ),
      rateLimitMarks: new Map(request.delayedJobs.map((job) => [job, hashMarks.get(job) ?? ''])),
    });
    if (commitAfter(b) || b === s.batches.length - 1) {
      redis.play(book.commitOps());
      book.committedOps();
      if (checkEachCommit) assertConsistent(redis);
    }
  });
  return redis;
}

/** Each indexed job in w, a or f is in exactly that set of its task; no set holds anything else. */
function assertConsistent(redis: ModelRedis) {
  const index = redis.get(`${jp}idx`);
  for (const task of tasks)
    for (const [state, kind] of Object.entries(setKinds))
      for (const member of redis.get(`${jp}${kind}:${task}`).keys())
        assert.equal(index.get(member), `${state}|${task}`, `${member} is in ${kind}:${task}`);
  for (const [job, entry] of index) {
    const [state, task] = entry.split('|') as [string, string];
    const kind = setKinds[state];
    if (kind) assert.ok(redis.get(`${jp}${kind}:${task}`).has(job), `${job} is ${entry} but not in its set`);
  }
}

test('where the commits fall does not change what Redis holds, and index and sets always agree', () => {
  let rateLimitedSeen = 0;
  for (let seed = 1; seed <= 400; seed++) {
    const s = scenario(seed);
    const rand = random(seed * 7919);
    const once = play(s, () => false, true).snapshot();
    const everyBatch = play(s, () => true, true).snapshot();
    const randomly = play(s, () => rand() < 0.4, true).snapshot();
    assert.deepEqual(everyBatch, once, `seed ${seed}: committing every batch`);
    assert.deepEqual(randomly, once, `seed ${seed}: committing at random`);
    if (once.some((line) => line.includes('ratelimited:'))) rateLimitedSeen++;
  }
  assert.ok(rateLimitedSeen > 20, `scenarios ending with a rate-limited job: ${rateLimitedSeen}`);
});
