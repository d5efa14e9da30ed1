// The live feed of lifecycle transitions: one reader per process follows the queues' BullMQ event
// streams (XREAD BLOCK on a connection of its own) and hands each read's transitions and progress
// reports, as one batch, to every subscriber. Subscribers never slow the reader: they are called
// synchronously and must buffer (or drop) on their own. Transitions are named as in lifecycle.ts;
// each event carries its stream entry's id.
//
// On a single Redis server the reader is the exporter's own (metrics/event-stream-reader.ts): it
// decodes of each entry only the fields the feed uses (a progress entry's data, a delayed entry's
// time, no other entry's data), where ioredis would make a string of every field of every entry (a
// job's data, its return value). On a Cluster or through Sentinel, whose routing belongs to ioredis,
// it reads through ioredis.
//
// Where this process leads a queue's lifecycle exporter, the exporter reads that queue's stream
// anyway: the feed takes the exporter's batches (the same entries, decoded the same way, with the
// task types the exporter's book knows) instead of reading the stream a second time. It reads the
// stream itself wherever the exporter does not hand it an unbroken sequence from where the feed
// stands: another manager leads, the exporter recounts, lags behind the feed or skipped ahead.
import { Cluster, type Redis } from 'ioredis';
import { jobHashField } from './bullmq/job-hash.js';
import { jobKey, queueOwnKey } from './bullmq/keys.js';
import { isRateLimitedMove } from './bullmq/rate-limited-move.js';
import type { Transition } from './lifecycle.js';
import type { Logger } from './logger.js';
import { DirectStreamReader, decodeStreamEntry } from './metrics/event-stream-reader.js';
import type { ExporterEntries, ExporterEntriesListener } from './metrics/exporter.js';
import type { StreamEvent } from './metrics/lifecycle-book.js';
import { countProcessError } from './metrics/process-health.js';
import { compareStreamIds } from './metrics/stream-ids.js';
import type { StreamDecoding, StreamEntries } from './metrics/stream-reply-parser.js';
import { duplicateBlockingConnection, logConnectionOutages } from './redis.js';

/** What the feed keeps of an entry: the exporter's fields, plus a progress report's data. */
const feedDecoding: StreamDecoding = { progressData: true };
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

/** A running task's ctx.progress(value): not a transition, so the task stays in its state. */
export interface ProgressFeedEvent {
  kind: 'progress';
  /** The BullMQ event stream entry's id. */
  id: string;
  queue: string;
  task: string | null;
  taskId: string;
  /** The value the task reported. */
  progress: unknown;
  at: number;
}

/** What the feed delivers: transitions, and progress reports (told apart by `kind`). */
export type FeedEvent = LifecycleFeedEvent | ProgressFeedEvent;

export function isProgressEvent(event: FeedEvent): event is ProgressFeedEvent {
  return (event as ProgressFeedEvent).kind === 'progress';
}

export interface FeedFilter {
  queue?: string;
  task?: string;
  /** Only transitions (and progress reports) of these tasks. */
  taskIds?: ReadonlySet<string>;
  /** Only these transitions (no progress reports). */
  transitions?: ReadonlySet<Transition>;
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
  /**
   * How the streams are read: 'direct' decodes only the fields the feed uses, on a connection of its
   * own, where the connection is to one Redis server (not a Cluster, Sentinel or key-prefixed
   * connection); 'ioredis' always reads through ioredis. @default 'direct'
   */
  reader?: 'direct' | 'ioredis';
  /**
   * This process's lifecycle exporter: the streams of the queues it leads are taken from its reads
   * (LifecycleExporter.onEntries) instead of read again. @default the feed reads every stream itself
   */
  exporter?: { onEntries(listener: ExporterEntriesListener): () => void };
  /**
   * A stream the exporter has handed nothing for this long is read by the feed itself again (a
   * leading exporter hands a batch, maybe empty, at least every half second). @default 2000
   */
  exporterStaleMs?: number;
}

export function matchesFeedFilter(event: FeedEvent, filter: FeedFilter): boolean {
  return (
    (filter.queue === undefined || event.queue === filter.queue) &&
    (filter.task === undefined || event.task === filter.task) &&
    (filter.taskIds === undefined || filter.taskIds.has(event.taskId)) &&
    (filter.transitions === undefined ||
      (!isProgressEvent(event) && filter.transitions.has(event.transition)))
  );
}

/**
 * A subscriber's callback: the transitions and progress reports of one read, oldest first per
 * stream. `whole` says the array is the feed's own batch, the same array for every subscriber that
 * takes all of it (a reply made of it can be made once); read it, never change it.
 */
export type FeedBatchListener = (events: readonly FeedEvent[], whole: boolean) => void;

/** Whether a Last-Event-ID (a stream entry id) is well formed. */
export function isStreamId(value: string): boolean {
  return /^\d{1,20}-\d{1,20}$/.test(value);
}

/**
 * How the reader reads: XREAD of the streams, and a field of jobs' hashes (the task types of jobs it
 * does not know, the rate-limit marks of delayed jobs).
 */
interface FeedSource {
  read(
    keys: readonly string[],
    positions: readonly string[],
    count: number,
    blockMs: number,
  ): Promise<StreamEntries[]>;
  hashField(keys: readonly string[], field: string): Promise<(string | null)[]>;
  close(): void;
}

/** A stream the feed follows: where it stands, and whether the exporter's reads bring it on. */
interface FollowedStream {
  /** The storage queue (a partition's own name). */
  storage: string;
  key: string;
  /** The last entry taken; undefined until the stream's end is read when the feed starts. */
  position: string | undefined;
  /** When the exporter last handed a batch reaching the position; 0: the feed reads it itself. */
  fedAt: number;
}

export class LifecycleFeed {
  private readonly listeners = new Set<FeedBatchListener>();
  private readonly taskOf = new Map<string, string>();
  /** The last transition seen per job, to tell a retry's backoff from a delayed submission. */
  private readonly lastState = new Map<string, FeedState>();
  /** Jobs the feed last saw rate-limited (bounded like lastState: dropped when they wait again). */
  private readonly rateLimited = new Set<string>();
  private readonly blockMs: number;
  private readonly batchSize: number;
  private readonly minReadIntervalMs: number;
  private readonly maxRemembered: number;
  /** The stream (storage queue) an event came from, where it is not the event's queue (partitions). */
  private readonly streamOf = new WeakMap<FeedEvent, string>();
  private sources: FeedSource[] = [];
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly exporterStaleMs: number;
  /** The streams followed, by storage queue, while running. */
  private streams = new Map<string, FollowedStream>();
  private stopTakingExporterEntries: (() => void) | undefined;
  /** Batches are translated one at a time, in the order they were read: each waits for this one. */
  private translating: Promise<unknown> = Promise.resolve();
  /** Transitions translated and not yet handed to the subscribers, and from how many streams. */
  private outbox: FeedEvent[] = [];
  private outboxStream: string | undefined;
  private outboxMixed = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private lastFlushAt = 0;

  constructor(private readonly options: LifecycleFeedOptions) {
    this.blockMs = options.blockMs ?? 5000;
    this.batchSize = options.batchSize ?? 2000;
    this.minReadIntervalMs = options.minReadIntervalMs ?? 200;
    this.maxRemembered = options.maxRemembered ?? 100_000;
    this.exporterStaleMs = options.exporterStaleMs ?? 2000;
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  /** Calls `listener` with every read's transitions from now on; returns the unsubscribe function. */
  subscribe(listener: FeedBatchListener): () => void {
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
  async replay(queue: string, afterId: string, limit: number): Promise<FeedEvent[]> {
    const events: FeedEvent[] = [];
    for (const storage of this.storageQueues(queue)) {
      const entries = await this.options.connection.xrange(
        queueOwnKey(this.options.prefix, storage, 'events'),
        `(${afterId}`,
        '+',
        'COUNT',
        limit,
      );
      events.push(
        ...(await this.translate(
          storage,
          entries.map((e) => decodeStreamEntry(e, feedDecoding)),
          ioredisHashField(this.options.connection),
        )),
      );
    }
    return events;
  }

  private storageQueues(queue: string): string[] {
    return this.options.partitions?.storageQueues(queue) ?? [queue];
  }

  /**
   * Subscribes with a filter, first replaying the transitions after `afterId` (at most `replayLimit`
   * entries read per queue) when given. Each transition reaches `onBatch` once, in stream order per
   * queue; transitions that arrive during the replay wait in a queue of at most `maxPending`, past
   * which `onOverflow` is called. A subscriber that takes every transition gets the feed's own
   * batches. Returns the unsubscribe function once the replay is delivered.
   */
  async follow(options: {
    filter: FeedFilter;
    queues: readonly string[];
    afterId?: string;
    replayLimit: number;
    maxPending: number;
    onBatch: FeedBatchListener;
    onOverflow: () => void;
  }): Promise<() => void> {
    const { filter } = options;
    const takesAll =
      filter.queue === undefined &&
      filter.task === undefined &&
      filter.taskIds === undefined &&
      filter.transitions === undefined &&
      this.options.queues.every((q) => options.queues.includes(q));
    // After a replay, the last id sent per stream, until the live transitions of that stream pass it
    // (they come in order per stream: from then on none can have been sent).
    let lastSent: Map<string, string> | undefined;
    const deliver = (batch: readonly FeedEvent[]) => {
      let events = takesAll
        ? batch
        : batch.filter((e) => options.queues.includes(e.queue) && matchesFeedFilter(e, filter));
      const sent = lastSent;
      if (sent) {
        events = events.filter((event) => {
          const stream = this.streamOf.get(event) ?? event.queue;
          const last = sent.get(stream);
          if (last === undefined) return true;
          if (compareStreamIds(event.id, last) <= 0) return false;
          sent.delete(stream);
          return true;
        });
        if (sent.size === 0) lastSent = undefined;
      }
      if (events.length > 0) options.onBatch(events, events === batch);
    };
    let pending: (readonly FeedEvent[])[] | undefined = options.afterId === undefined ? undefined : [];
    let pendingEvents = 0;
    const unsubscribe = this.subscribe((batch) => {
      if (!pending) return deliver(batch);
      pendingEvents += batch.length;
      if (pendingEvents > options.maxPending) {
        pending = [];
        pendingEvents = 0;
        options.onOverflow();
      } else pending.push(batch);
    });
    if (options.afterId !== undefined) {
      const replayed = new Map<string, string>();
      try {
        for (const queue of options.queues) {
          const read = await this.replay(queue, options.afterId, options.replayLimit);
          // Every transition read counts, matched or not: the live ones start after them.
          for (const e of read) replayed.set(this.streamOf.get(e) ?? e.queue, e.id);
          const events = read.filter((e) => matchesFeedFilter(e, filter));
          if (events.length > 0) options.onBatch(events, false);
        }
      } catch (error) {
        unsubscribe();
        throw error;
      }
      const waiting = pending ?? [];
      pending = undefined;
      lastSent = replayed.size > 0 ? replayed : undefined;
      for (const batch of waiting) deliver(batch);
    }
    return unsubscribe;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.detach();
    for (const source of this.sources) source.close();
    await Promise.allSettled(this.loops);
    await this.translating;
    this.sources = [];
    this.loops = [];
  }

  private start() {
    this.running = true;
    // One read follows every queue on a single server; on a Cluster, whose queues live in different
    // slots, each queue has a reader of its own.
    const { connection, prefix } = this.options;
    const streams = this.options.queues.flatMap((q) => this.storageQueues(q));
    this.streams = new Map(
      streams.map((storage) => [
        storage,
        { storage, key: queueOwnKey(prefix, storage, 'events'), position: undefined, fedAt: 0 },
      ]),
    );
    const followed = [...this.streams.values()];
    const groups = connection instanceof Cluster ? followed.map((s) => [s]) : [followed];
    for (const group of groups) {
      const source = this.openSource();
      this.sources.push(source);
      this.loops.push(this.readLoop(source, group));
    }
    this.stopTakingExporterEntries = this.options.exporter?.onEntries(this.takeExporterEntries);
  }

  /** Stops taking the exporter's batches and handing out transitions. */
  private detach() {
    this.stopTakingExporterEntries?.();
    this.stopTakingExporterEntries = undefined;
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.outbox = [];
    this.outboxStream = undefined;
    this.outboxMixed = false;
  }

  /** The direct reader where the connection is to one Redis server, else an ioredis connection. */
  private openSource(): FeedSource {
    const { connection, logger } = this.options;
    const { sentinels, keyPrefix } = connection.options ?? {};
    const direct =
      this.options.reader !== 'ioredis' &&
      !(connection instanceof Cluster) &&
      !(sentinels && sentinels.length > 0) &&
      !keyPrefix;
    if (direct) {
      const reader = new DirectStreamReader(connection.options, feedDecoding);
      return {
        read: (keys, positions, count, blockMs) => reader.readStreams(keys, positions, count, blockMs),
        hashField: (keys, field) => reader.hashField(keys, field),
        close: () => reader.close(),
      };
    }
    const reader = duplicateBlockingConnection(connection);
    logConnectionOutages(reader, logger, 'lifecycle feed');
    return {
      read: async (keys, positions, count, blockMs) => {
        const reply = (await reader.xread(
          'COUNT',
          count,
          'BLOCK',
          blockMs,
          'STREAMS',
          ...keys,
          ...positions,
        )) as [string, [string, string[]][]][] | null;
        return (reply ?? []).map(([key, entries]) => ({
          key,
          events: entries.map((e) => decodeStreamEntry(e, feedDecoding)),
        }));
      },
      hashField: ioredisHashField(connection),
      close: () => reader.disconnect(),
    };
  }

  /** Whether the exporter's batches bring the stream on now (the feed need not read it). */
  private fedByExporter(stream: FollowedStream, now: number): boolean {
    return stream.fedAt > 0 && now - stream.fedAt < this.exporterStaleMs;
  }

  private async readLoop(source: FeedSource, streams: FollowedStream[]) {
    let lastReadAt = 0;
    let behind = false;
    let failures = 0;
    while (this.running && this.sources.includes(source)) {
      try {
        const wait = lastReadAt + this.minReadIntervalMs - Date.now();
        if (wait > 0 && !behind) await new Promise((resolve) => setTimeout(resolve, wait));
        // Stopped while waiting: a read sent now on the closed connection would wait for ever.
        if (!this.running || !this.sources.includes(source)) return;
        if (this.listeners.size === 0) {
          // Nobody listens: stop, and start from the streams' ends when someone subscribes again.
          this.leave(source);
          return;
        }
        lastReadAt = Date.now();
        if (streams.some((stream) => stream.position === undefined)) {
          const ends = await Promise.all(streams.map((s) => lastEntryId(this.options.connection, s.key)));
          streams.forEach((stream, i) => {
            stream.position ??= ends[i];
          });
        }
        const own = streams.filter((stream) => !this.fedByExporter(stream, lastReadAt));
        behind = false;
        // The exporter brings every stream on: look again in a while whether it still does.
        if (own.length === 0) continue;
        const afterIds = own.map((stream) => stream.position!);
        // While the exporter brings some streams on, a stream it stops bringing is read soon enough.
        const blockMs =
          own.length < streams.length ? Math.min(this.blockMs, this.exporterStaleMs) : this.blockMs;
        const reply = await source.read(
          own.map((stream) => stream.key),
          afterIds,
          this.batchSize,
          blockMs,
        );
        if (!this.running) return;
        if (failures > 0) {
          this.options.logger.info({ failures }, 'lifecycle feed reads again');
          failures = 0;
        }
        if (this.listeners.size === 0) {
          this.leave(source);
          return;
        }
        for (const { key, events } of reply) {
          const index = own.findIndex((stream) => stream.key === key);
          if (index === -1) continue;
          if (events.length >= this.batchSize) behind = true;
          await this.inTurn(() => this.take(own[index]!, afterIds[index]!, events, source.hashField));
        }
        this.flushSoon();
      } catch (error) {
        if (!this.running) return;
        // Logged when reads start failing and when they work again, not at every retry.
        countProcessError('lifecycle-feed-read');
        failures++;
        if (failures === 1)
          this.options.logger.warn({ err: error }, 'lifecycle feed read failed; reading again');
        else this.options.logger.debug({ err: error, failures }, 'lifecycle feed read failed again');
        await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 500 * failures)));
      }
    }
  }

  /** Runs `work` once every batch before it is translated. */
  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const turn = this.translating.then(work);
    this.translating = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  /**
   * A batch the exporter read (and applied): taken where it follows on from the feed's position
   * without a gap, else left to the feed's own reads. The task types of its jobs are taken from the
   * exporter's book now (it may forget them once they are committed).
   */
  private readonly takeExporterEntries = (batch: ExporterEntries) => {
    const stream = this.streams.get(batch.queue);
    if (!this.running || !stream || stream.position === undefined || this.listeners.size === 0) return;
    const { afterId, entries } = batch;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.event === 'added' || this.taskOf.has(e.jobId)) continue;
      const task = batch.taskOf(e.jobId);
      if (task !== undefined) this.remember(e.jobId, task);
    }
    // The jobs' hashes are read on the shared connection: the feed's own may be waiting in a read.
    const hashField = ioredisHashField(this.options.connection);
    void this.inTurn(async () => {
      try {
        if (await this.take(stream, afterId, entries, hashField, true)) this.flushSoon();
      } catch (error) {
        // The stream is read by the feed itself from where it stands.
        stream.fedAt = 0;
        countProcessError('lifecycle-feed-translate');
        this.options.logger.warn({ err: error }, 'lifecycle feed could not take the exporter batch');
      }
    });
  };

  /**
   * Takes the entries after `afterId` read from `stream` (by the feed or the exporter): those past
   * the feed's position, translated into the outbox, when nothing between lies unread. Answers
   * whether any transition was added.
   */
  private async take(
    stream: FollowedStream,
    afterId: string,
    entries: readonly StreamEvent[],
    hashField: FeedSource['hashField'],
    fromExporter = false,
  ): Promise<boolean> {
    const position = stream.position;
    if (position === undefined || this.streams.get(stream.storage) !== stream) return false;
    // Entries between the position and afterId were never read here: the feed reads them itself.
    const gap = compareStreamIds(afterId, position) > 0;
    if (fromExporter) {
      const reached = entries.length > 0 ? entries[entries.length - 1]!.id : afterId;
      stream.fedAt = !gap && compareStreamIds(reached, position) >= 0 ? Date.now() : 0;
    }
    if (gap) return false;
    let first = 0;
    while (first < entries.length && compareStreamIds(entries[first]!.id, position) <= 0) first++;
    if (first === entries.length) return false;
    const fresh = first === 0 ? entries : entries.slice(first);
    const events = await this.translate(stream.storage, fresh, hashField);
    if (this.streams.get(stream.storage) !== stream) return false;
    stream.position = fresh[fresh.length - 1]!.id;
    if (events.length === 0) return false;
    if (this.outbox.length === 0) this.outboxStream = stream.storage;
    else if (this.outboxStream !== stream.storage) this.outboxMixed = true;
    for (const event of events) this.outbox.push(event);
    return true;
  }

  /**
   * Hands the outbox to the subscribers, as one batch, at most every minReadIntervalMs: the
   * exporter's batches come more often than the feed's own reads would.
   */
  private flushSoon() {
    if (this.flushTimer || this.outbox.length === 0) return;
    const wait = this.lastFlushAt + this.minReadIntervalMs - Date.now();
    if (wait <= 0) {
      this.flush();
      return;
    }
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, wait);
  }

  private flush() {
    const batch = this.outbox;
    if (batch.length === 0) return;
    if (this.outboxMixed) batch.sort((a, b) => compareStreamIds(a.id, b.id));
    this.outbox = [];
    this.outboxStream = undefined;
    this.outboxMixed = false;
    this.lastFlushAt = Date.now();
    for (const listener of this.listeners) listener(batch, true);
  }

  private leave(source: FeedSource) {
    source.close();
    this.sources = this.sources.filter((s) => s !== source);
    if (this.sources.length === 0) {
      this.running = false;
      this.loops = [];
      this.detach();
    }
  }

  private async translate(
    storage: string,
    entries: readonly StreamEvent[],
    hashField: FeedSource['hashField'],
  ): Promise<FeedEvent[]> {
    const { prefix } = this.options;
    const queue = this.options.partitions?.queueOf(storage) ?? storage;
    const unknown = new Set<string>();
    for (const e of entries) {
      if (e.event === 'added' && e.extra !== '') this.remember(e.jobId, e.extra);
      else if (!this.taskOf.has(e.jobId)) unknown.add(e.jobId);
    }
    if (unknown.size > 0) {
      // The jobs added before the feed started (or forgotten since): their hashes, in one round trip.
      const ids = [...unknown];
      const found = await hashField(
        ids.map((id) => jobKey(prefix, storage, id)),
        'name',
      );
      ids.forEach((id, i) => {
        const name = found[i];
        if (typeof name === 'string') this.remember(id, name);
      });
    }
    const rateLimitedMoves = await this.readRateLimitMarks(storage, entries, hashField);
    const events: FeedEvent[] = [];
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.event === 'progress') {
        const event = progressEvent(e, queue, this.taskOf.get(e.jobId) ?? null);
        if (queue !== storage) this.streamOf.set(event, storage);
        events.push(event);
        continue;
      }
      const classified = this.classify(e, entries[i + 1], rateLimitedMoves.has(e));
      if (!classified) continue;
      if (classified.consumedNext) i++;
      const [transition, state] = classified.result;
      if (state === 'completed' || state === 'removed') {
        this.lastState.delete(e.jobId);
        this.rateLimited.delete(e.jobId);
      } else {
        this.lastState.set(e.jobId, state);
        if (this.lastState.size > this.maxRemembered) {
          const oldest = this.lastState.keys().next().value;
          if (oldest !== undefined) this.lastState.delete(oldest);
        }
      }
      const event: LifecycleFeedEvent = {
        id: e.id,
        queue,
        task: this.taskOf.get(e.jobId) ?? null,
        taskId: e.jobId,
        transition,
        state,
        at: e.ms,
      };
      if (queue !== storage) this.streamOf.set(event, storage);
      events.push(event);
    }
    return events;
  }

  private classify(
    e: StreamEvent,
    next: StreamEvent | undefined,
    rateLimitedMove: boolean,
  ): { result: [Transition, FeedState]; consumedNext?: boolean } | undefined {
    const before = this.lastState.get(e.jobId);
    const prev = e.event === 'added' ? '' : e.extra;
    switch (e.event) {
      case 'waiting':
        if (prev === 'active' || before === 'active') {
          if (next?.event === 'stalled' && next.jobId === e.jobId)
            return { result: ['timed-out', 'waiting'], consumedNext: true };
          return { result: ['failed-with-retries', 'waiting'] };
        }
        if (this.rateLimited.delete(e.jobId)) return { result: ['rate-limit-ended', 'waiting'] };
        if (prev === 'delayed' || before === 'delayed') return { result: ['backoff-recurred', 'waiting'] };
        if (prev === 'failed' || before === 'failed') return { result: ['incident-resolved', 'waiting'] };
        return { result: ['created', 'waiting'] };
      case 'active':
        return { result: ['activated', 'active'] };
      case 'delayed':
        if (rateLimitedMove) {
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
   * The `delayed` entries that are rate-limited moves: the job's hash names the time they carry (their
   * `extra`; see bullmq/rate-limited-move.ts). One read of the jobs' hashes per batch holding any.
   */
  private async readRateLimitMarks(
    storage: string,
    entries: readonly StreamEvent[],
    hashField: FeedSource['hashField'],
  ): Promise<Set<StreamEvent>> {
    const moves = new Set<StreamEvent>();
    const delayed = entries.filter((e) => e.event === 'delayed' && e.extra !== '');
    if (delayed.length === 0) return moves;
    const marks = await hashField(
      delayed.map((e) => jobKey(this.options.prefix, storage, e.jobId)),
      jobHashField.rateLimitedUntil,
    );
    delayed.forEach((e, i) => {
      if (isRateLimitedMove(marks[i] ?? undefined, e.extra)) moves.add(e);
    });
    return moves;
  }

  private remember(jobId: string, task: string) {
    if (this.taskOf.size >= this.maxRemembered && !this.taskOf.has(jobId)) {
      const oldest = this.taskOf.keys().next().value;
      if (oldest !== undefined) {
        this.taskOf.delete(oldest);
        this.lastState.delete(oldest);
      }
    }
    this.taskOf.set(jobId, task);
  }
}

/** A field of jobs' hashes read through ioredis, in one pipeline. */
function ioredisHashField(connection: Redis): FeedSource['hashField'] {
  return async (keys, field) => {
    if (keys.length === 0) return [];
    const read = connection.pipeline();
    for (const key of keys) read.hget(key, field);
    const replies = (await read.exec()) ?? [];
    return keys.map((_, i) => {
      const [error, value] = replies[i] ?? [];
      return !error && typeof value === 'string' ? value : null;
    });
  };
}

/** A progress entry's report; its `extra` is the entry's `data` ('' when it has none). */
function progressEvent(e: StreamEvent, queue: string, task: string | null): ProgressFeedEvent {
  let progress: unknown = null;
  if (e.extra !== '') {
    try {
      progress = JSON.parse(e.extra);
    } catch {
      // Not JSON (written by other code than ctx.progress): the text as it is.
      progress = e.extra;
    }
  }
  return { kind: 'progress', id: e.id, queue, task, taskId: e.jobId, progress, at: e.ms };
}

/** The id of a stream's last entry, or 0-0 for an empty or absent stream. */
async function lastEntryId(connection: Redis, key: string): Promise<string> {
  const last = await connection.xrevrange(key, '+', '-', 'COUNT', 1);
  return last[0]?.[0] ?? '0-0';
}
