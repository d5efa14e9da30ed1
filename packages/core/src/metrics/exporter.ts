// The lifecycle exporter: one leader per queue (elected through Redis, so any manager can take
// over) applies BullMQ's event stream to the bookkeeping behind the cluster-wide metrics, the way
// the Zeebe exporter applies its record stream. The leader applies events to an in-memory book and
// commits the netted writes with the stream position in one atomic step, at least every
// `commitMs` and whenever it has caught up; a new leader resumes from the last commit. It detects
// trimmed gaps and recounts, and reconciles with BullMQ's own lists whenever it is caught up.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { type Logger, pino } from 'pino';
import { jobHashField } from '../bullmq/job-hash.js';
import { jobbersKey, queueKey, queueMetricsKey } from '../keys.js';
import { scripts } from '../lua/registry.js';
import { duplicateBlockingConnection, logConnectionOutages } from '../redis.js';
import { latencyBuckets } from './definitions.js';
import {
  createEventStreamReader,
  DirectStreamReader,
  type EventStreamReader,
  type EventStreamReaderKind,
} from './event-stream-reader.js';

export type { EventStreamReaderKind } from './event-stream-reader.js';

import {
  type JobState,
  LifecycleBook,
  type LookupRequest,
  type LookupResult,
  type StreamEvent,
} from './lifecycle-book.js';
import { countProcessError } from './process-health.js';
import { QueueRecount, type RecountPosition } from './recount.js';
import { compareStreamIds } from './stream-ids.js';

export { compareStreamIds };

import { roleActivityKey, soleActiveRole } from './role-activity.js';

export interface LifecycleExporterOptions {
  /** A connection the exporter may duplicate; it makes one blocking connection per queue. */
  connection: Redis;
  prefix: string;
  /** The queues whose event streams it follows: every storage queue (registry.storageQueues()). */
  queues: readonly string[];
  /**
   * The queue label of a followed queue's series: a partition's series carry its queue's name.
   * @default the queue's own name
   */
  queueLabel?: (queue: string) => string;
  /** Roles that may appear in the role label; others are reported as `unknown`. */
  roles?: readonly string[];
  logger?: Logger;
  batchSize?: number;
  blockMs?: number;
  leaseMs?: number;
  reconcileMs?: number;
  /**
   * After a batch smaller than batchSize, wait this long before the next read, so events are
   * applied in batches rather than one by one when the exporter keeps up. Bounds the added lag.
   */
  minTurnMs?: number;
  /** While events keep coming, commit the applied events at least this often (default 250 ms). */
  commitMs?: number;
  /**
   * How the event stream is read (event-stream-reader.ts): `auto` picks the cheapest reader the
   * connection allows; `ioredis` reads through ioredis, to measure what the direct reader buys.
   * @default 'auto'
   */
  streamReader?: EventStreamReaderKind;
}

/**
 * A batch of a queue's event stream as its leader read and applied it: every entry after `afterId`
 * up to the last of `entries` (none: nothing followed `afterId` when it was read). A failed turn
 * reads again from the last commit, so a batch may repeat entries of earlier ones.
 */
export interface ExporterEntries {
  /** The queue whose stream was read (a partition's own name). */
  queue: string;
  afterId: string;
  /** Decoded as the lifecycle feed decodes them (a progress entry keeps its data); never change them. */
  entries: readonly StreamEvent[];
  /** The task type of a job of `entries`, while the listener runs (the book may forget it after). */
  taskOf(jobId: string): string | undefined;
}

export type ExporterEntriesListener = (batch: ExporterEntries) => void;

const silentLogger = pino({ level: 'silent' });
/** Greater than every stream id: with it as the recount boundary, no job is taken as new. */
const lastStreamId = `${Number.MAX_SAFE_INTEGER}-${Number.MAX_SAFE_INTEGER}`;
/** How often a recount applies the events written since it began, between its slices. */
const recountReplayMs = 50;

export class LifecycleExporter {
  private readonly consumers: QueueExporter[];

  constructor(options: LifecycleExporterOptions) {
    this.consumers = options.queues.map((queue) => new QueueExporter(queue, options));
  }

  start(): this {
    for (const consumer of this.consumers) consumer.start();
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all(this.consumers.map((c) => c.stop()));
  }

  /**
   * Hands `listener` every batch this process reads while it leads a queue, where its reader decodes
   * what the lifecycle feed needs (the direct reader, on one Redis server), so the feed need not read
   * the stream again. Called synchronously between the read and the commit: it must not block.
   * Returns the function that stops it.
   */
  onEntries(listener: ExporterEntriesListener): () => void {
    for (const consumer of this.consumers) consumer.entriesListeners.add(listener);
    return () => {
      for (const consumer of this.consumers) consumer.entriesListeners.delete(listener);
    };
  }

  /** Queues this process leads now. */
  get leading(): string[] {
    return this.consumers.filter((c) => c.isLeader).map((c) => c.queue);
  }

  /** Resolves when every queue's position has reached the stream's newest entry (whoever leads). */
  async waitUntilCaughtUp(timeoutMs = 10_000): Promise<void> {
    await Promise.all(this.consumers.map((c) => c.waitUntilCaughtUp(timeoutMs)));
  }

  /** Resolves once every queue has a position (its first recount is done). */
  async waitUntilReady(timeoutMs = 10_000): Promise<void> {
    await Promise.all(this.consumers.map((c) => c.waitUntilReady(timeoutMs)));
  }
}

export function exporterStateKey(prefix: string, queue: string): string {
  return jobbersKey(prefix, queue, 'exporter');
}

/** Where the leader stands: the last applied stream id and how many entries the stream had then. */
interface Position {
  pos: string;
  added: number;
}

class QueueExporter {
  isLeader = false;
  recountRequested = false;
  readonly entriesListeners = new Set<ExporterEntriesListener>();
  private readonly token = randomBytes(8).toString('hex');
  private readonly redis: Redis;
  private readonly blocking: Redis;
  private readonly reader: EventStreamReader;
  private readonly logger: Logger;
  private readonly qp: string;
  private readonly jp: string;
  private readonly stateKey: string;
  private readonly leaderKey: string;
  private readonly stream: string;
  private readonly rolesKey: string;
  private readonly batchSize: number;
  private readonly blockMs: number;
  private readonly leaseMs: number;
  private readonly reconcileMs: number;
  private readonly minTurnMs: number;
  private readonly commitMs: number;
  private running = false;
  private loop: Promise<void> | undefined;
  private leaseRenewedAt = 0;
  private lastReconcileAt = 0;
  private lastCommitAt = 0;
  /** Applied (maybe not yet committed) position; undefined until read after taking the lead. */
  private position: Position | undefined;
  private committedPos: string | undefined;
  /** The stream's head when the last recount finished: jobs added up to it may be counted already. */
  private countedUntil = '0-0';
  private book: LifecycleBook;
  private readonly recounter: QueueRecount;

  constructor(
    readonly queue: string,
    private readonly options: LifecycleExporterOptions,
  ) {
    const { prefix } = options;
    this.redis = duplicateBlockingConnection(options.connection);
    this.blocking = duplicateBlockingConnection(options.connection);
    this.reader = createEventStreamReader(options.connection, this.redis, options.streamReader);
    this.logger = (options.logger ?? silentLogger).child({ queue, component: 'lifecycle-exporter' });
    // Commands that fail meanwhile fail the turn, which is logged and retried.
    logConnectionOutages(this.redis, this.logger, 'lifecycle-exporter');
    logConnectionOutages(this.blocking, this.logger, 'lifecycle-exporter blocking reads');
    // A Redis Cluster node lost (a master failing over): check the stored position at once.
    this.redis.on('-node', () => {
      this.lastReconcileAt = 0;
    });
    this.qp = `${queueKey(prefix, queue)}:`;
    this.jp = jobbersKey(prefix, queue, '');
    this.stateKey = exporterStateKey(prefix, queue);
    this.leaderKey = jobbersKey(prefix, queue, 'exporter:leader');
    this.stream = `${this.qp}events`;
    this.rolesKey = roleActivityKey(prefix, queue);
    this.batchSize = options.batchSize ?? 1000;
    this.blockMs = options.blockMs ?? 500;
    this.leaseMs = options.leaseMs ?? 10_000;
    this.reconcileMs = options.reconcileMs ?? 5000;
    this.minTurnMs = options.minTurnMs ?? 50;
    this.commitMs = options.commitMs ?? 250;
    this.book = this.newBook();
    this.recounter = new QueueRecount(this.redis, {
      prefix,
      queue,
      leaderKey: this.leaderKey,
      stateKey: this.stateKey,
      token: this.token,
      leaseMs: this.leaseMs,
    });
  }

  private newBook(bookkeepingPrefix = this.jp) {
    return new LifecycleBook(
      {
        jobbersPrefix: this.jp,
        bookkeepingPrefix,
        metricsPrefix: queueMetricsKey(this.options.prefix, this.queue, ''),
        queue: this.options.queueLabel?.(this.queue) ?? this.queue,
        bucketBounds: latencyBuckets,
      },
      this.options.roles ?? [],
    );
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop() {
    this.running = false;
    this.blocking.disconnect();
    // A read in progress is failed rather than awaited (Redis may be gone). A commit in progress is
    // awaited: failing it would leave unknown whether Redis applied it.
    this.reader.cancelRead();
    await this.loop;
    if (this.isLeader) {
      await this.commit().catch((error) =>
        this.logger.warn({ err: (error as Error).message }, 'final commit failed; the next leader replays'),
      );
      await scripts.releaseIfHeld
        .run(this.redis, [this.leaderKey], [this.token])
        .catch((error) =>
          this.logger.warn(
            { err: (error as Error).message },
            'could not release the lead; another manager takes it once the lease lapses',
          ),
        );
    }
    this.isLeader = false;
    this.reader.close();
    this.redis.disconnect();
  }

  private async run() {
    while (this.running) {
      try {
        if (!(await this.holdLease())) {
          await this.pause(Math.min(1000, this.leaseMs / 3));
          continue;
        }
        await this.turn();
      } catch (error) {
        // What the turn applied may or may not be committed: it is read again from the committed
        // position (by this process, or by the next leader when stopping).
        this.forget();
        if (!this.running) break;
        this.logger.warn({ err: (error as Error).message }, 'lifecycle exporter turn failed; retrying');
        await this.pause(500);
      }
    }
  }

  private pause(ms: number) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Drops everything applied since the last commit; it is read again from the committed position. */
  private forget() {
    this.position = undefined;
    this.committedPos = undefined;
    this.book = this.newBook();
  }

  /** Takes or renews the per-queue leadership; false when another process leads. */
  private async holdLease(): Promise<boolean> {
    const now = Date.now();
    if (this.isLeader && now - this.leaseRenewedAt < this.leaseMs / 3) return true;
    const renewed = await scripts.leaseHold.run(this.redis, [this.leaderKey], [this.token, this.leaseMs]);
    const wasLeader = this.isLeader;
    this.isLeader = renewed !== 0;
    if (this.isLeader) this.leaseRenewedAt = now;
    if (renewed === 2 || !this.isLeader) this.forget();
    if (this.isLeader !== wasLeader)
      this.logger.info({ leader: this.isLeader }, 'lifecycle exporter leadership changed');
    return this.isLeader;
  }

  private async turn() {
    if (!this.position) {
      const [[pos, added, countedUntil], unfinished] = await Promise.all([
        this.redis.hmget(this.stateKey, 'pos', 'added', 'countedUntil'),
        this.redis.exists(this.recounter.progressKey),
      ]);
      if (pos === null || unfinished === 1) {
        await this.recount(pos === null ? 'no position yet' : 'a recount was left unfinished');
        return;
      }
      this.position = { pos, added: Number(added ?? 0) };
      this.countedUntil = countedUntil ?? '0-0';
      this.committedPos = pos;
    }
    if (this.recountRequested) {
      this.recountRequested = false;
      await this.recount('requested');
      return;
    }
    const { pos, added } = this.position;
    // Read first, then check: if no entry after pos is missing now, none was missing when it was
    // read (trimming only removes the oldest entries). Roles are read after the events too: a
    // role that activated a job in the batch recorded itself before that, so it is seen.
    const batch = await this.reader.readBatch(this.stream, pos, this.batchSize, this.rolesKey);
    const events = holdBackCutStall(batch.events, this.batchSize);
    const { streamInfo: info, roles } = batch;
    if (info instanceof Error) {
      if (!/no such key/i.test(info.message)) throw info;
      if (pos !== '0-0') {
        await this.recount('event stream is gone');
        return;
      }
    } else if (trimmedPast(info, pos, added)) {
      await this.recount('event stream trimmed past the position: events were never applied');
      return;
    }
    if (events.length === 0) {
      this.shareEntries(pos, events);
      await this.commit();
      await this.reconcileIfDue();
      await this.waitForEvents(pos);
      return;
    }
    const pending = this.book.prepare(events, {
      soleRole: soleActiveRole(roles, events[0]!.ms),
      countedUntil: this.countedUntil,
    });
    if (pending.apply(await this.lookup(pending.request, this.jp))) this.recountRequested = true;
    this.shareEntries(pos, events);
    this.position = { pos: events[events.length - 1]!.id, added: added + events.length };
    const caughtUp = events.length < this.batchSize - 1;
    if (caughtUp || Date.now() - this.lastCommitAt >= this.commitMs || this.book.pendingWrites > 50_000)
      await this.commit();
    if (caughtUp && this.minTurnMs > 0) await this.pause(this.minTurnMs);
  }

  /** Hands the batch just read (and applied) to the entries' listeners. */
  private shareEntries(afterId: string, entries: readonly StreamEvent[]) {
    if (this.entriesListeners.size === 0 || !(this.reader instanceof DirectStreamReader)) return;
    const batch: ExporterEntries = {
      queue: this.queue,
      afterId,
      entries,
      taskOf: (jobId) => this.book.taskOf(jobId),
    };
    for (const listener of this.entriesListeners) {
      try {
        listener(batch);
      } catch (error) {
        // A listener's failure is its own: the exporter goes on.
        countProcessError('exporter-entries-listener');
        this.logger.warn({ err: error }, 'a listener of the exporter entries failed');
      }
    }
  }

  private async lookup(request: LookupRequest, bookkeepingPrefix: string): Promise<LookupResult> {
    const { unknownJobs, activatedJobs, maybeYielded, delayedJobs } = request;
    if (unknownJobs.length + activatedJobs.length + maybeYielded.length + delayedJobs.length === 0)
      return { committed: new Map(), takenBy: new Map(), yieldMarks: new Map() };
    const reply = (
      await scripts.exporterLookup.run(
        this.redis,
        [this.stateKey],
        [
          this.qp,
          this.jp,
          unknownJobs.join('\0'),
          activatedJobs.join('\0'),
          maybeYielded.join('\0'),
          bookkeepingPrefix,
          jobHashField.processedBy,
          delayedJobs.join('\0'),
          jobHashField.rateLimitedUntil,
        ],
      )
    ).split('\0');
    const expected = 2 * unknownJobs.length + activatedJobs.length + maybeYielded.length + delayedJobs.length;
    if (reply.length !== expected)
      throw new Error(`lookup answered ${reply.length} values for ${expected}: not applying the batch`);
    let r = 0;
    const committed: LookupResult['committed'] = new Map();
    for (const jobId of unknownJobs) {
      const indexed = reply[r++]!;
      const second = reply[r++]!;
      if (indexed) {
        const separator = indexed.indexOf('|');
        committed.set(jobId, {
          state: indexed.slice(0, separator) as JobState,
          task: indexed.slice(separator + 1),
          sinceMs: second ? Number(second) : 0,
        });
      } else committed.set(jobId, { state: null, task: second || null, sinceMs: 0 });
    }
    const takenBy = new Map(activatedJobs.map((jobId) => [jobId, reply[r++]!]));
    const yieldMarks = new Map(maybeYielded.map((jobId) => [jobId, Number(reply[r++])]));
    const rateLimitMarks = new Map(delayedJobs.map((jobId) => [jobId, reply[r++]!]));
    return { committed, takenBy, yieldMarks, rateLimitMarks };
  }

  /** Writes what the book applied since the last commit, with the position, if this process still leads. */
  private async commit() {
    if (!this.position || !this.isLeader) return;
    const ops = this.book.commitOps();
    if (ops.length === 0 && this.position.pos === this.committedPos) return;
    const args: string[][] = [[this.token, this.position.pos, String(this.position.added)]];
    for (const op of ops) args.push([op.command, op.key, String(op.args.length)], op.args);
    const result = await this.reader.evalScript(
      scripts.exporterCommit,
      [this.stateKey, this.leaderKey],
      ...args,
    );
    if (result === '-1') {
      this.isLeader = false;
      this.forget();
      return;
    }
    this.book.committedOps();
    this.committedPos = this.position.pos;
    this.lastCommitAt = Date.now();
  }

  private async waitForEvents(pos: string) {
    if (!this.running) return;
    try {
      await this.blocking.xread('COUNT', 1, 'BLOCK', this.blockMs, 'STREAMS', this.stream, pos);
    } catch (error) {
      // stop() disconnects this connection to end the wait: that failure is the stop itself.
      if (this.running) throw error;
    }
  }

  private async reconcileIfDue() {
    if (Date.now() - this.lastReconcileAt < this.reconcileMs || !this.position) return;
    this.lastReconcileAt = Date.now();
    const pos = this.position.pos;
    const [lastId, storedPos, ...counts] = await scripts.exporterReconcile.run(
      this.redis,
      [this.stateKey],
      [this.qp, this.jp],
    );
    if (storedPos !== this.committedPos && this.committedPos !== undefined) {
      // Redis holds an older position than this leader committed: a replica promoted after its
      // master died lacked the last writes. What it holds is consistent with its own stream, but
      // the book here is not: count again from BullMQ's lists.
      const committed = this.committedPos;
      this.forget();
      await this.recount(
        `stored position ${storedPos || '(none)'} is behind the committed ${committed}: writes were lost (failover)`,
      );
      return;
    }
    if (lastId !== pos || storedPos !== pos) return;
    const [trueAvail, ourAvail, trueActive, ourActive, trueFailed, ourFailed, delayed, ourRateLimited] =
      counts.map(Number);
    if (
      trueAvail !== ourAvail ||
      trueActive !== ourActive ||
      trueFailed !== ourFailed ||
      ourRateLimited! > delayed!
    ) {
      await this.recount(
        `bookkeeping drifted from BullMQ (available ${ourAvail}/${trueAvail}, active ${ourActive}/${trueActive}, failed ${ourFailed}/${trueFailed}, rate-limited ${ourRateLimited} of ${delayed} delayed)`,
      );
    }
  }

  /**
   * Commits what was applied (counters included), then rebuilds the bookkeeping from BullMQ's lists
   * (or resumes the rebuild a previous leader left). Counting runs in slices inside Redis; between
   * slices the events written since the recount began are applied onto what it counted, so the
   * stream is never left far behind, and the lease is renewed. The live bookkeeping (the last
   * committed values) stays in place until the counted one is swapped in.
   */
  private async recount(reason: string): Promise<void> {
    await this.commit();
    if (!this.isLeader) return;
    const begun = await this.recounter.begin();
    if (!begun) return this.deposed();
    this.logger.info({ reason, resumed: begun === 'resumed' }, 'recounting queue state from BullMQ');
    const startedAt = Date.now();
    let position = await this.recounter.position();
    let counted = false;
    let replayedAt = 0;
    let behind = false;
    // The replay's book is kept between slices; jobs a slice found moved are forgotten by it.
    let book = this.newBook(this.recounter.bookkeepingPrefix);
    while (this.running && position) {
      if (!(await this.renewLeaseDuringWork())) return;
      // Counting waits while the events are behind: the stream must not be trimmed past them.
      if (!counted && !behind) {
        // Slices go out in pairs on the one connection, so Redis starts the next as soon as it
        // finishes one instead of waiting for a round trip. Each slice reads where the last left
        // off; one asked for after the end counts nothing.
        const chunks = await Promise.all([this.recounter.countChunk(), this.recounter.countChunk()]);
        for (const chunk of chunks) {
          if (chunk === 'not-leader') return this.deposed();
          counted ||= chunk.status === 'done';
          book.forgetJobs(chunk.moved);
        }
        this.leaseRenewedAt = Date.now();
      }
      // The events are applied every few slices (each slice is a few ms), and at every step while
      // they are behind or once everything is counted.
      if (!counted && !behind && Date.now() - replayedAt < recountReplayMs) continue;
      replayedAt = Date.now();
      const replay = await this.replayIntoRecount(position, book);
      if (replay === 'not-leader') return this.deposed();
      if (replay === 'restart' || replay === 'cleaned') {
        this.logger.warn(
          { why: replay === 'restart' ? 'the event stream was trimmed past it' : 'jobs were cleaned' },
          'recount invalidated: counting again from the start',
        );
        if (!(await this.recounter.begin(true))) return this.deposed();
        position = await this.recounter.position();
        counted = false;
        book = this.newBook(this.recounter.bookkeepingPrefix);
        continue;
      }
      position = replay.position;
      behind = !replay.caughtUp;
      if (behind || !counted) continue;
      if (!(await this.recounter.swap())) return this.deposed();
      this.forget();
      this.lastReconcileAt = Date.now();
      this.logger.info({ ms: Date.now() - startedAt }, 'recount done');
      return;
    }
  }

  /**
   * Applies the next batch of events after the recount's position onto the recount's keys, through
   * the recount's own book, committed with the new position into the recount's progress.
   */
  private async replayIntoRecount(
    position: RecountPosition,
    book: LifecycleBook,
  ): Promise<{ position: RecountPosition; caughtUp: boolean } | 'restart' | 'cleaned' | 'not-leader'> {
    const { pos, added } = position;
    // Larger batches than a turn's: the stream keeps only ~10,000 entries, and the counting slices
    // between two replays leave less time to keep up with it.
    const replayBatch = this.batchSize * 5;
    const batch = await this.reader.readBatch(this.stream, pos, replayBatch, this.rolesKey);
    const { streamInfo: info, roles } = batch;
    if (info instanceof Error) {
      if (!/no such key/i.test(info.message)) throw info;
      return pos === '0-0' ? { position, caughtUp: true } : 'restart';
    }
    if (trimmedPast(info, pos, added)) return 'restart';
    const events = holdBackCutStall(batch.events, replayBatch);
    if (events.length === 0) return { position, caughtUp: true };
    // No job is taken as new: the counting may have placed any job, whenever it was added.
    const pending = book.prepare(events, {
      soleRole: soleActiveRole(roles, events[0]!.ms),
      countedUntil: lastStreamId,
    });
    // A `cleaned` event removed jobs without an event each: what was counted before it is stale.
    if (pending.apply(await this.lookup(pending.request, this.recounter.bookkeepingPrefix))) return 'cleaned';
    const next = { pos: events[events.length - 1]!.id, added: added + events.length };
    const args: string[][] = [[this.token, next.pos, String(next.added)]];
    for (const op of book.commitOps()) args.push([op.command, op.key, String(op.args.length)], op.args);
    const result = await this.reader.evalScript(
      scripts.exporterCommit,
      [this.recounter.progressKey, this.leaderKey],
      ...args,
    );
    if (result === '-1') return 'not-leader';
    book.committedOps();
    return { position: next, caughtUp: events.length < replayBatch - 1 };
  }

  /** Renews the lease from inside long work; false (and no longer leading) when it was lost. */
  private async renewLeaseDuringWork(): Promise<boolean> {
    if (Date.now() - this.leaseRenewedAt < this.leaseMs / 3) return true;
    const renewed = await scripts.leaseRenew.run(this.redis, [this.leaderKey], [this.token, this.leaseMs]);
    if (renewed === 1) {
      this.leaseRenewedAt = Date.now();
      return true;
    }
    this.deposed();
    return false;
  }

  /** Another process took the lead: whatever this one was doing is dropped, unwritten. */
  private deposed() {
    if (this.isLeader) this.logger.info({ leader: false }, 'lifecycle exporter leadership changed');
    this.isLeader = false;
    this.forget();
  }

  async waitUntilReady(timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    while ((await this.redis.hget(this.stateKey, 'pos')) === null) {
      if (Date.now() > deadline) throw new Error(`lifecycle exporter for ${this.queue} has no position yet`);
      await this.pause(10);
    }
  }

  async waitUntilCaughtUp(timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [last, pos] = await Promise.all([
        this.redis.xrevrange(this.stream, '+', '-', 'COUNT', 1),
        this.redis.hget(this.stateKey, 'pos'),
      ]);
      const lastId = last[0]?.[0] ?? '0-0';
      if (pos !== null && compareStreamIds(pos, lastId) >= 0) return;
      if (Date.now() > deadline)
        throw new Error(
          `lifecycle exporter for ${this.queue} not caught up (at ${pos}, stream at ${lastId})`,
        );
      await this.pause(20);
    }
  }
}

/** True when entries after `pos` were trimmed before they were applied. */
function trimmedPast(info: unknown[], pos: string, addedAtPos: number): boolean {
  let length = 0;
  let entriesAdded = 0;
  let first: unknown;
  for (let k = 0; k < info.length; k += 2) {
    const name = info[k];
    if (name === 'length') length = Number(info[k + 1]);
    else if (name === 'entries-added') entriesAdded = Number(info[k + 1]);
    else if (name === 'first-entry') first = info[k + 1];
  }
  const firstId = Array.isArray(first) ? String(first[0]) : undefined;
  return firstId !== undefined && compareStreamIds(firstId, pos) > 0 && entriesAdded - addedAtPos > length;
}

/**
 * A waiting-after-active cut off at the end of a full batch may be a lease expiry whose `stalled`
 * entry is in the next batch: it is left for the next turn.
 */
function holdBackCutStall(events: StreamEvent[], batchSize: number): StreamEvent[] {
  const last = events[events.length - 1];
  if (
    events.length === batchSize &&
    events.length > 1 &&
    last?.event === 'waiting' &&
    last.extra === 'active'
  )
    events.pop();
  return events;
}
