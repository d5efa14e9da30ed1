// Finding tasks by queue, type, state and submission time: BullMQ's state lists and sets are read a
// bounded window at a time and filtered, so no request ever loads a whole million-job set.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { jobHashField } from './bullmq/job-hash.js';
import { jobStateSource } from './bullmq/keys.js';
import { JobbersError } from './errors.js';
import { jobKey } from './keys.js';
import { resolveQueue } from './routing.js';
import type { TaskRegistry } from './task.js';

/** In the order an unfiltered listing walks them, per queue. */
export const listableStates = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;
export type ListableState = (typeof listableStates)[number];

export interface TaskFilter {
  queue?: string;
  /** Task type (the BullMQ job name). */
  task?: string;
  /** ISO time: only tasks submitted strictly before it. */
  before?: string;
  /** ISO time: only tasks submitted at or after it. */
  after?: string;
}

export interface TaskQuery extends TaskFilter {
  /** Absent: every listable state, in the order of listableStates. */
  state?: ListableState;
  limit?: number;
  cursor?: string;
}

export const defaultPageSize = 50;
export const maxPageSize = 500;
/** Entries read from Redis per round trip. */
const windowSize = 500;
/** Entries one page may examine; a page cut short by it is shorter than asked, with a nextCursor. */
export const maxScannedPerPage = 10_000;
/** How far to look for a list entry that moved (new jobs pushed in front of it) before falling back to its old offset. */
const listAnchorReach = 10_000;

export interface ResolvedFilter {
  queues: string[];
  states: ListableState[];
  task?: string;
  beforeMs?: number;
  afterMs?: number;
  /** Ties a cursor to the query it was made for. */
  fingerprint: string;
}

interface Source {
  key: string;
  kind: 'list' | 'zset';
  /** Sorted sets: newest (highest score) first. */
  descending?: boolean;
  /** Finished sets are scored by finish time, never earlier than submission: they can stop at `after`. */
  scoredByFinish?: boolean;
}

function sourcesOf(prefix: string, queue: string, state: ListableState): Source[] {
  switch (state) {
    case 'waiting':
      return [jobStateSource(prefix, queue, 'wait'), jobStateSource(prefix, queue, 'paused')];
    case 'active':
    case 'prioritized':
    case 'delayed':
      return [jobStateSource(prefix, queue, state)];
    case 'completed':
    case 'failed':
      return [{ ...jobStateSource(prefix, queue, state), descending: true, scoredByFinish: true }];
  }
}

/** Where a scan stands: the source it is in and the last entry it passed there. */
export interface ScanPosition {
  queue: string;
  state: ListableState;
  source: number;
  /** Lists: index of the last entry passed. */
  offset?: number;
  /** Sorted sets: score of the last entry passed. */
  score?: string;
  /** The last entry passed; absent at the start of a source. */
  id?: string;
}

export interface FoundTask {
  id: string;
  queue: string;
  state: ListableState;
}

/** The API documents before/after as `format: date-time`: a date and a time with its zone, nothing looser. */
const rfc3339DateTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

function parseTime(name: 'before' | 'after', value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = rfc3339DateTime.test(value) ? Date.parse(value.toUpperCase()) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new JobbersError(
      'INVALID_FILTER',
      `${name} must be an RFC 3339 date-time with a zone, such as 2025-01-31T12:00:00Z, got "${value.slice(0, 64)}"`,
    );
  }
  return ms;
}

/** Checks a filter against the registry; throws a JobbersError (400) for anything unknown or malformed. */
export function resolveFilter(
  registry: TaskRegistry,
  filter: TaskFilter,
  states: readonly ListableState[] = listableStates,
): ResolvedFilter {
  for (const state of states) {
    if (!listableStates.includes(state)) {
      throw new JobbersError(
        'INVALID_FILTER',
        `unknown state "${state}"; one of ${listableStates.join(', ')}`,
      );
    }
  }
  if (filter.queue !== undefined && !registry.queues.includes(filter.queue)) {
    throw new JobbersError(
      'UNKNOWN_QUEUE',
      `unknown queue "${filter.queue}"; known queues: ${registry.queues.join(', ')}`,
    );
  }
  let queues = filter.queue === undefined ? [...registry.queues] : [filter.queue];
  if (filter.task !== undefined) {
    const def = registry.get(filter.task);
    if (filter.queue !== undefined) resolveQueue(def, filter.queue);
    else queues = queues.filter((q) => q === def.queue || def.queues?.includes(q));
  }
  // A partitioned queue is scanned partition by partition.
  queues = queues.flatMap((q) => registry.storageQueues(q));
  const beforeMs = parseTime('before', filter.before);
  const afterMs = parseTime('after', filter.after);
  if (beforeMs !== undefined && afterMs !== undefined && afterMs >= beforeMs) {
    throw new JobbersError(
      'INVALID_FILTER',
      `after (${filter.after}) must be earlier than before (${filter.before})`,
    );
  }
  const fingerprint = createHash('sha256')
    .update(JSON.stringify([queues, states, filter.task ?? null, beforeMs ?? null, afterMs ?? null]))
    .digest('base64url')
    .slice(0, 12);
  return { queues, states: [...states], task: filter.task, beforeMs, afterMs, fingerprint };
}

export function encodeCursor(filter: ResolvedFilter, position: ScanPosition): string {
  const { queue, state, source, offset, score, id } = position;
  return Buffer.from(
    JSON.stringify({ v: 1, f: filter.fingerprint, q: queue, s: state, k: source, o: offset, sc: score, id }),
  ).toString('base64url');
}

const scorePattern = /^-?\d+(\.\d+)?(e[-+]?\d+)?$/i;

export function decodeCursor(filter: ResolvedFilter, cursor: string): ScanPosition {
  const invalid = (why: string) =>
    new JobbersError('INVALID_CURSOR', `cursor is not valid for this query: ${why}; start again without it`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid('it is not a cursor this API returned');
  }
  if (typeof raw !== 'object' || raw === null || raw.v !== 1) throw invalid('unknown format');
  if (raw.f !== filter.fingerprint) throw invalid('it was made for other filters');
  const queue = raw.q as string;
  const state = raw.s as ListableState;
  const source = raw.k as number;
  if (!filter.queues.includes(queue) || !filter.states.includes(state)) throw invalid('unknown position');
  if (!Number.isInteger(source) || source < 0 || source >= sourcesOf('', queue, state).length)
    throw invalid('unknown position');
  const position: ScanPosition = { queue, state, source };
  if (raw.id !== undefined) {
    if (typeof raw.id !== 'string') throw invalid('bad anchor');
    position.id = raw.id;
    if (sourcesOf('', queue, state)[source]!.kind === 'list') {
      // Safe integers only: a larger number prints as 1e+21, which Redis refuses as an argument.
      if (!Number.isSafeInteger(raw.o) || (raw.o as number) < 0) throw invalid('bad offset');
      position.offset = raw.o as number;
    } else {
      // A finite number as Redis writes scores; Redis refuses ' ' and an overflowing '1e400' as a bound.
      if (typeof raw.sc !== 'string' || !scorePattern.test(raw.sc) || !Number.isFinite(Number(raw.sc)))
        throw invalid('bad score');
      position.score = raw.sc;
    }
  }
  return position;
}

interface Entry {
  id: string;
  /** Where the scan stands once this entry is passed. */
  position: ScanPosition;
}

/** Entries of one list from a position on, a window at a time (head first: most recently pushed first). */
async function* listEntries(redis: Redis, source: Source, at: ScanPosition): AsyncGenerator<Entry[]> {
  let start = 0;
  if (at.id !== undefined) {
    const found = await redis.lpos(source.key, at.id, 'MAXLEN', (at.offset ?? 0) + listAnchorReach);
    start = found === null ? (at.offset ?? 0) : found + 1;
  }
  for (;;) {
    const ids = await redis.lrange(source.key, start, start + windowSize - 1);
    yield ids.map((id, i) => ({ id, position: { ...at, offset: start + i, score: undefined, id } }));
    if (ids.length < windowSize) return;
    start += ids.length;
  }
}

/**
 * Entries of one sorted set after (score, id), a window at a time. Resuming by score rather than by
 * rank means removals and new entries elsewhere in the set neither skip nor repeat anything.
 */
async function* zsetEntries(
  redis: Redis,
  source: Source,
  at: ScanPosition,
  stopBelow?: number,
): AsyncGenerator<Entry[]> {
  const desc = source.descending === true;
  const from = at.score ?? (desc ? '+inf' : '-inf');
  const to = desc ? (stopBelow === undefined ? '-inf' : String(stopBelow)) : '+inf';
  const passed = (score: string, id: string) =>
    at.id !== undefined && Number(score) === Number(at.score) && (desc ? id >= at.id : id <= at.id);
  for (let skip = 0; ; skip += windowSize) {
    const flat = desc
      ? await redis.zrange(source.key, from, to, 'BYSCORE', 'REV', 'LIMIT', skip, windowSize, 'WITHSCORES')
      : await redis.zrange(source.key, from, to, 'BYSCORE', 'LIMIT', skip, windowSize, 'WITHSCORES');
    const entries: Entry[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const id = flat[i]!;
      const score = flat[i + 1]!;
      if (!passed(score, id)) entries.push({ id, position: { ...at, offset: undefined, score, id } });
    }
    yield entries;
    if (flat.length < windowSize * 2) return;
  }
}

function nextSource(filter: ResolvedFilter, at: ScanPosition): ScanPosition | undefined {
  if (at.source + 1 < sourcesOf('', at.queue, at.state).length)
    return { queue: at.queue, state: at.state, source: at.source + 1 };
  const s = filter.states.indexOf(at.state);
  if (s + 1 < filter.states.length) return { queue: at.queue, state: filter.states[s + 1]!, source: 0 };
  const q = filter.queues.indexOf(at.queue);
  if (q + 1 < filter.queues.length)
    return { queue: filter.queues[q + 1]!, state: filter.states[0]!, source: 0 };
  return undefined;
}

function firstPosition(filter: ResolvedFilter): ScanPosition | undefined {
  const [queue] = filter.queues;
  const [state] = filter.states;
  return queue && state ? { queue, state, source: 0 } : undefined;
}

export interface ScanResult {
  found: FoundTask[];
  /** Where to resume; absent when every source was read to its end. */
  next?: ScanPosition;
}

/**
 * Up to `want` tasks matching the filter, from `from` on (the start when absent), examining at most
 * `budget` entries. Task type and submission time come from one pipelined HMGET per window.
 */
export async function scanTasks(
  redis: Redis,
  prefix: string,
  filter: ResolvedFilter,
  from: ScanPosition | undefined,
  want: number,
  budget = maxScannedPerPage,
): Promise<ScanResult> {
  const found: FoundTask[] = [];
  const needsFields =
    filter.task !== undefined || filter.beforeMs !== undefined || filter.afterMs !== undefined;
  let at = from ?? firstPosition(filter);
  let scanned = 0;
  while (at) {
    const source = sourcesOf(prefix, at.queue, at.state)[at.source]!;
    const stopBelow = source.scoredByFinish ? filter.afterMs : undefined;
    const windows =
      source.kind === 'list' ? listEntries(redis, source, at) : zsetEntries(redis, source, at, stopBelow);
    for await (const entries of windows) {
      const matches = needsFields
        ? await matching(redis, prefix, at.queue, filter, entries)
        : entries.map(() => true);
      for (const [i, entry] of entries.entries()) {
        scanned++;
        if (matches[i]) found.push({ id: entry.id, queue: at.queue, state: at.state });
        if (found.length >= want || scanned >= budget) return { found, next: entry.position };
      }
    }
    at = nextSource(filter, at);
  }
  return { found };
}

async function matching(
  redis: Redis,
  prefix: string,
  queue: string,
  filter: ResolvedFilter,
  entries: Entry[],
): Promise<boolean[]> {
  if (entries.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const { id } of entries)
    pipeline.hmget(jobKey(prefix, queue, id), jobHashField.name, jobHashField.timestamp);
  const replies = (await pipeline.exec()) ?? [];
  return entries.map((_, i) => {
    const [error, fields] = replies[i] ?? [];
    if (error) throw error;
    const [name, timestamp] = (fields as (string | null)[] | undefined) ?? [];
    if (!name) return false;
    if (filter.task !== undefined && name !== filter.task) return false;
    const submittedMs = Number(timestamp);
    if (filter.beforeMs !== undefined && !(submittedMs < filter.beforeMs)) return false;
    if (filter.afterMs !== undefined && !(submittedMs >= filter.afterMs)) return false;
    return true;
  });
}
