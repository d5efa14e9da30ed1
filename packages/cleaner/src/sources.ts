// Where each cleaner state lives in BullMQ's keys, read a page at a time so no call is long.
import { jobStateSource } from '@jobbers/core';
import type { Redis } from 'ioredis';
import type { CleanerState } from './options.js';

export interface JobSource {
  state: CleanerState;
  key: string;
  kind: 'list' | 'zset';
  /** Finished sets are ordered by finish time: entries finished after this (unix ms) are left for the next run. */
  maxScore?: number;
}

export function sourcesFor(
  prefix: string,
  queue: string,
  state: CleanerState,
  runStartMs: number,
): JobSource[] {
  switch (state) {
    case 'completed':
    case 'failed':
      return [{ state, ...jobStateSource(prefix, queue, state), maxScore: runStartMs }];
    case 'delayed':
      return [{ state, ...jobStateSource(prefix, queue, 'delayed') }];
    case 'waiting':
      return (['wait', 'paused', 'prioritized'] as const).map((store) => ({
        state,
        ...jobStateSource(prefix, queue, store),
      }));
  }
}

export interface SourcePage {
  ids: string[];
  /** No entries after this page (the source ended, or the rest finished after the run started). */
  last: boolean;
  /** How many removals to pipeline (see removalsInFlight). */
  inFlight: number;
}

/**
 * BullMQ removes a waiting job with LREM, which walks the list from its head: on a list of a million
 * jobs one removal takes milliseconds. Redis runs a client's pipelined calls back to back, so on
 * long lists the cleaner sends fewer at once, down to one, letting other clients in between.
 */
const listEntriesPerBurst = 100_000;

export function removalsInFlight(source: JobSource, length: number, pageSize: number): number {
  if (source.kind === 'zset') return pageSize;
  return Math.max(1, Math.min(pageSize, Math.floor(listEntriesPerBurst / Math.max(1, length))));
}

/**
 * The page of ids at positions [start, start + size) (list: from the head; sorted set: by rank).
 * The caller advances start by the entries it left in place, so removals never skip an entry.
 */
export async function readPage(
  redis: Redis,
  source: JobSource,
  start: number,
  size: number,
): Promise<SourcePage> {
  const stop = start + size - 1;
  if (source.kind === 'list') {
    const [[rangeError, ids], [lengthError, length]] = (await redis
      .pipeline()
      .lrange(source.key, start, stop)
      .llen(source.key)
      .exec()) as [[Error | null, string[]], [Error | null, number]];
    if (rangeError ?? lengthError) throw rangeError ?? lengthError;
    return { ids, last: ids.length < size, inFlight: removalsInFlight(source, length, size) };
  }
  const inFlight = removalsInFlight(source, 0, size);
  if (source.maxScore === undefined) {
    const ids = await redis.zrange(source.key, start, stop);
    return { ids, last: ids.length < size, inFlight };
  }
  const flat = await redis.zrange(source.key, start, stop, 'WITHSCORES');
  const ids: string[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    if (Number(flat[i + 1]) > source.maxScore) return { ids, last: true, inFlight };
    ids.push(flat[i]!);
  }
  return { ids, last: ids.length < size, inFlight };
}
