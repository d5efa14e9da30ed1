// The live feed of lifecycle transitions: one reader per process follows the queues' BullMQ event
// streams (XREAD BLOCK on a connection of its own) and fans each transition out to every subscriber.
// Subscribers never slow the reader: they are called synchronously and must buffer (or drop) on
// their own. Transitions are named as in lifecycle.ts; each carries its stream entry's id.
import { Cluster, type Redis } from 'ioredis';
import { jobHashField } from './bullmq/job-hash.js';
import { jobKey, queueOwnKey } from './bullmq/keys.js';
import { isRateLimitedMove } from './bullmq/rate-limited-move.js';
import type { Transition } from './lifecycle.js';
import type { Logger } from './logger.js';
import { compareStreamIds } from './metrics/stream-ids.js';
import { duplicateBlockingConnection, logConnectionOutages } from './redis.js';

/** The state a task is in after the transition, as GET /v1/tasks/:id names it. */
export type FeedState = 'waiting' | 'delayed' | 'active' | 'completed' | 'failed' | 'removed';

export interface LifecycleFeedEvent {
  /** The BullMQ event stream entry's id: the position to resume after. */
  id: string;
  queue: string;
  /** The task type; null when the task was removed before the feed learned its type. */
  task: string | null;
  taskId: string;
  transition: Transition;
  state: FeedState;
  /** When the transition happened (ms since the epoch, from the stream id). */
  at: number;
}

export interface FeedFilter {
  queue?: string;
  task?: string;
  taskId?: string;
}

export interface LifecycleFeedOptions {
  connection: Redis;
  prefix: string;
  queues: readonly string[];
  /**
   * Where a partitioned queue keeps its jobs (TaskRegistry answers both): its partitions' streams are
   * followed, and their transitions carry the queue's name.
   * @default every queue is its own storage
   */
  partitions?: { storageQueues(queue: string): string[]; queueOf(storageQueue: string): string };
  logger: Logger;
  /** How long one blocking read waits before it looks again. @default 5000 */
  blockMs?: number;
  /** Entries one read takes per stream. @default 2000 */
  batchSize?: number;
  /**
   * The least time between two reads. A blocked reader is woken by every entry added, which under load
   * costs Redis a wake-up and the feed a round trip per few entries; reading at most this often takes
   * the entries in batches instead, for at most this much more delay. @default 200
   */
  minReadIntervalMs?: number;
  /** Task types remembered by task id (jobs' hashes are read for the others). @default 100000 */
  maxRemembered?: number;
}

interface RawEntry {
  id: string;
  event: string;
  jobId: string;
  name?: string;
  prev?: string;
  /** `delayed`: the time it is delayed to. */
  delay?: string;
  /** `delayed`: a rate limit's move (found by readRateLimitMarks). */
  rateLimited?: boolean;
}

export function matchesFeedFilter(event: LifecycleFeedEvent, filter: FeedFilter): boolean {
  return (
    (filter.queue === undefined || event.queue === filter.queue) &&
    (filter.task === undefined || event.task === filter.task) &&
    (filter.taskId === undefined || event.taskId === filter.taskId)
  );
}

/** A subscriber's callback. */
export type FeedListener = (event: LifecycleFeedEvent) => void;

/** Whether a Last-Event-ID (a stream entry id) is well formed. */
export function isStreamId(value: string): boolean {
  return /^\d{1,20}-\d{1,20}$/.test(value);
}

export class LifecycleFeed {
  private readonly listeners = new Set<FeedListener>();
  private readonly taskOf = new Map<string, string>();
  /** The last transition seen per job, to tell a retry's backoff from a delayed submission. */
  private readonly lastState = new Map<string, FeedState>();
  /** Jobs the feed last saw rate-limited (bounded like lastState: dropped when they wait again). */
  private readonly rateLimited = new Set<string>();
  private readonly blockMs: number;
  private readonly batchSize: number;
  private readonly minReadIntervalMs: number;
  private readonly maxRemembered: number;
  /** The stream (storage queue) each event came from, for ordering per stream. */
  private readonly streamOf = new WeakMap<LifecycleFeedEvent, string>();
  private readers: Redis[] = [];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly options: LifecycleFeedOptions) {
    this.blockMs = options.blockMs ?? 5000;
    this.batchSize = options.batchSize ?? 2000;
    this.minReadIntervalMs = options.minReadIntervalMs ?? 200;
    this.maxRemembered = options.maxRemembered ?? 100_000;
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  /** Calls `listener` for every transition from now on; returns the unsubscribe function. */
  subscribe(listener: FeedListener): () => void {
    this.listeners.add(listener);
    if (!this.running) this.start();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Transitions after `afterId` in one queue's stream (each partition's, for a partitioned queue),
   * oldest first per stream, at most `limit` entries read per stream.
   */
  async replay(queue: string, afterId: string, limit: number): Promise<LifecycleFeedEvent[]> {
    const events: LifecycleFeedEvent[] = [];
    for (const storage of this.storageQueues(queue)) {
      const entries = await this.options.connection.xrange(
        queueOwnKey(this.options.prefix, storage, 'events'),
        `(${afterId}`,
        '+',
        'COUNT',
        limit,
      );
      events.push(...(await this.translate(storage, entries.map(rawEntry))));
    }
    return events;
  }

  private storageQueues(queue: string): string[] {
    return this.options.partitions?.storageQueues(queue) ?? [queue];
  }

  /**
   * Subscribes with a filter, first replaying the transitions after `afterId` (at most `replayLimit`
   * entries read per queue) when given. Each transition reaches `listener` once, in stream order per
   * queue; transitions that arrive during the replay wait in a queue of at most `maxPending`, past
   * which `onOverflow` is called. Returns the unsubscribe function once the replay is delivered.
   */
  async follow(options: {
    filter: FeedFilter;
    queues: readonly string[];
    afterId?: string;
    replayLimit: number;
    maxPending: number;
    listener: FeedListener;
    onOverflow: () => void;
  }): Promise<() => void> {
    const lastSent = new Map<string, string>();
    const deliver = (event: LifecycleFeedEvent) => {
      if (!options.queues.includes(event.queue) || !matchesFeedFilter(event, options.filter)) return;
      const stream = this.streamOf.get(event) ?? event.queue;
      const last = lastSent.get(stream);
      if (last !== undefined && compareStreamIds(event.id, last) <= 0) return;
      lastSent.set(stream, event.id);
      options.listener(event);
    };
    let pending: LifecycleFeedEvent[] | undefined = options.afterId === undefined ? undefined : [];
    const unsubscribe = this.subscribe((event) => {
      if (!pending) return deliver(event);
      if (pending.length >= options.maxPending) {
        pending = [];
        options.onOverflow();
      } else pending.push(event);
    });
    if (options.afterId !== undefined) {
      try {
        for (const queue of options.queues) {
          for (const event of await this.replay(queue, options.afterId, options.replayLimit)) deliver(event);
        }
      } catch (error) {
        unsubscribe();
        throw error;
      }
      const waiting = pending ?? [];
      pending = undefined;
      for (const event of waiting) deliver(event);
    }
    return unsubscribe;
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const reader of this.readers) reader.disconnect();
    await Promise.allSettled(this.loops);
    this.readers = [];
    this.loops = [];
  }

  private start() {
    this.running = true;
    // One read follows every queue on a single server; on a Cluster, whose queues live in different
    // slots, each queue has a reader of its own.
    const streams = this.options.queues.flatMap((q) => this.storageQueues(q));
    const groups = this.options.connection instanceof Cluster ? streams.map((q) => [q]) : [streams];
    for (const queues of groups) {
      const reader = duplicateBlockingConnection(this.options.connection);
      logConnectionOutages(reader, this.options.logger, 'lifecycle feed');
      this.readers.push(reader);
      this.loops.push(this.readLoop(reader, queues));
    }
  }

  private async readLoop(reader: Redis, queues: string[]) {
    const keys = queues.map((q) => queueOwnKey(this.options.prefix, q, 'events'));
    let positions: string[] | undefined;
    let lastReadAt = 0;
    let behind = false;
    while (this.running && this.readers.includes(reader)) {
      try {
        const wait = lastReadAt + this.minReadIntervalMs - Date.now();
        if (wait > 0 && !behind) await new Promise((resolve) => setTimeout(resolve, wait));
        // Stopped while waiting: a read sent now on the closed connection would wait for ever.
        if (!this.running || !this.readers.includes(reader)) return;
        lastReadAt = Date.now();
        positions ??= await Promise.all(keys.map((key) => lastEntryId(this.options.connection, key)));
        const reply = (await reader.xread(
          'COUNT',
          this.batchSize,
          'BLOCK',
          this.blockMs,
          'STREAMS',
          ...keys,
          ...positions,
        )) as [string, [string, string[]][]][] | null;
        if (!this.running) return;
        if (this.listeners.size === 0) {
          // Nobody listens: stop, and start from the streams' ends when someone subscribes again.
          this.leave(reader);
          return;
        }
        behind = false;
        if (!reply) continue;
        const batch: LifecycleFeedEvent[] = [];
        for (const [key, entries] of reply) {
          const index = keys.indexOf(key);
          if (entries.length > 0) positions[index] = entries[entries.length - 1]![0];
          if (entries.length >= this.batchSize) behind = true;
          batch.push(...(await this.translate(queues[index]!, entries.map(rawEntry))));
        }
        batch.sort((a, b) => compareStreamIds(a.id, b.id));
        for (const event of batch) for (const listener of this.listeners) listener(event);
      } catch (error) {
        if (!this.running) return;
        this.options.logger.warn({ err: error }, 'lifecycle feed read failed; reading again');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private leave(reader: Redis) {
    reader.disconnect();
    this.readers = this.readers.filter((r) => r !== reader);
    if (this.readers.length === 0) {
      this.running = false;
      this.loops = [];
    }
  }

  private async translate(queue: string, entries: RawEntry[]): Promise<LifecycleFeedEvent[]> {
    for (const e of entries) if (e.event === 'added' && e.name) this.remember(e.jobId, e.name);
    const unknown = [...new Set(entries.filter((e) => !this.taskOf.has(e.jobId)).map((e) => e.jobId))];
    if (unknown.length > 0) {
      const read = this.options.connection.pipeline();
      for (const id of unknown) read.hget(jobKey(this.options.prefix, queue, id), 'name');
      const names = (await read.exec()) ?? [];
      unknown.forEach((id, i) => {
        const [error, name] = names[i] ?? [];
        if (!error && typeof name === 'string') this.remember(id, name);
      });
    }
    await this.readRateLimitMarks(queue, entries);
    const events: LifecycleFeedEvent[] = [];
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const next = entries[i + 1];
      const classified = this.classify(e, next);
      if (!classified) continue;
      if (classified.consumedNext) i++;
      const [transition, state] = classified.result;
      this.lastState.set(e.jobId, state);
      if (this.lastState.size > this.maxRemembered) {
        const oldest = this.lastState.keys().next().value;
        if (oldest !== undefined) this.lastState.delete(oldest);
      }
      const event: LifecycleFeedEvent = {
        id: e.id,
        queue: this.options.partitions?.queueOf(queue) ?? queue,
        task: this.taskOf.get(e.jobId) ?? null,
        taskId: e.jobId,
        transition,
        state,
        at: Number(e.id.split('-')[0]),
      };
      this.streamOf.set(event, queue);
      events.push(event);
      if (state === 'completed' || state === 'removed') {
        this.lastState.delete(e.jobId);
        this.rateLimited.delete(e.jobId);
      }
    }
    return events;
  }

  private classify(
    e: RawEntry,
    next: RawEntry | undefined,
  ): { result: [Transition, FeedState]; consumedNext?: boolean } | undefined {
    const before = this.lastState.get(e.jobId);
    switch (e.event) {
      case 'waiting':
        if (e.prev === 'active' || before === 'active') {
          if (next?.event === 'stalled' && next.jobId === e.jobId)
            return { result: ['timed-out', 'waiting'], consumedNext: true };
          return { result: ['failed-with-retries', 'waiting'] };
        }
        if (this.rateLimited.delete(e.jobId)) return { result: ['rate-limit-ended', 'waiting'] };
        if (e.prev === 'delayed' || before === 'delayed') return { result: ['backoff-recurred', 'waiting'] };
        if (e.prev === 'failed' || before === 'failed') return { result: ['incident-resolved', 'waiting'] };
        return { result: ['created', 'waiting'] };
      case 'active':
        return { result: ['activated', 'active'] };
      case 'delayed':
        if (e.rateLimited) {
          if (this.rateLimited.size >= this.maxRemembered) this.rateLimited.clear();
          this.rateLimited.add(e.jobId);
          return { result: ['rate-limited', 'delayed'] };
        }
        // A delayed submission is reported as created (in state delayed), a retry's backoff as such.
        return before === 'active'
          ? { result: ['failed-with-backoff', 'delayed'] }
          : { result: ['created', 'delayed'] };
      case 'completed':
        return { result: ['completed', 'completed'] };
      case 'failed':
        return { result: ['failed', 'failed'] };
      case 'removed':
        return { result: ['removed', 'removed'] };
      default:
        return undefined;
    }
  }

  /**
   * Finds which `delayed` entries are rate-limited moves: the job's hash names the time they carry
   * (see bullmq/rate-limited-move.ts). One pipelined read per batch holding any.
   */
  private async readRateLimitMarks(queue: string, entries: RawEntry[]) {
    const delayed = entries.filter((e) => e.event === 'delayed' && e.delay);
    if (delayed.length === 0) return;
    const read = this.options.connection.pipeline();
    for (const e of delayed)
      read.hget(jobKey(this.options.prefix, queue, e.jobId), jobHashField.rateLimitedUntil);
    const marks = (await read.exec()) ?? [];
    delayed.forEach((e, i) => {
      const [error, value] = marks[i] ?? [];
      if (!error && isRateLimitedMove(value as string | undefined, e.delay!)) e.rateLimited = true;
    });
  }

  private remember(jobId: string, task: string) {
    if (this.taskOf.size >= this.maxRemembered) {
      const oldest = this.taskOf.keys().next().value;
      if (oldest !== undefined) {
        this.taskOf.delete(oldest);
        this.lastState.delete(oldest);
      }
    }
    this.taskOf.set(jobId, task);
  }
}

function rawEntry([id, fields]: [string, string[]]): RawEntry {
  const entry: RawEntry = { id, event: '', jobId: '' };
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1]!;
    switch (fields[i]) {
      case 'event':
        entry.event = value;
        break;
      case 'jobId':
        entry.jobId = value;
        break;
      case 'name':
        entry.name = value;
        break;
      case 'prev':
        entry.prev = value;
        break;
      case 'delay':
        entry.delay = value;
        break;
    }
  }
  return entry;
}

/** The id of a stream's last entry, or 0-0 for an empty or absent stream. */
async function lastEntryId(connection: Redis, key: string): Promise<string> {
  const last = await connection.xrevrange(key, '+', '-', 'COUNT', 1);
  return last[0]?.[0] ?? '0-0';
}
