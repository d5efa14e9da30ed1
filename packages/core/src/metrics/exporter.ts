// The lifecycle exporter: one leader per queue (elected through Redis, so any manager can take
// over) applies BullMQ's event stream to the bookkeeping behind the cluster-wide metrics, the way
// the Zeebe exporter applies its record stream. It resumes from a persisted position, detects
// trimmed gaps and recounts, and reconciles with BullMQ's own lists whenever it is caught up.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { type Logger, pino } from 'pino';
import { jobbersKey, queueKey } from '../keys.js';
import { duplicateBlockingConnection } from '../redis.js';
import { applyEventsScript, reconcileScript, swapRecountScript } from './apply-events-script.js';
import { latencyBuckets } from './definitions.js';
import { type RecountResult, recountQueue } from './recount.js';

export interface LifecycleExporterOptions {
  /** A connection the exporter may duplicate; it makes one blocking connection per queue. */
  connection: Redis;
  prefix: string;
  queues: readonly string[];
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
}

const silentLogger = pino({ level: 'silent' });

export function compareStreamIds(a: string, b: string): number {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  const ms = BigInt(am!) - BigInt(bm!);
  if (ms !== 0n) return ms > 0n ? 1 : -1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq > 0n ? 1 : -1;
}

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

class QueueExporter {
  isLeader = false;
  recountRequested = false;
  private readonly token = randomBytes(8).toString('hex');
  private readonly redis: Redis;
  private readonly blocking: Redis;
  private readonly logger: Logger;
  private readonly qp: string;
  private readonly jp: string;
  private readonly mp: string;
  private readonly stateKey: string;
  private readonly leaderKey: string;
  private readonly stream: string;
  private readonly batchSize: number;
  private readonly blockMs: number;
  private readonly leaseMs: number;
  private readonly reconcileMs: number;
  private readonly minTurnMs: number;
  private readonly knownRoles: string;
  private running = false;
  private loop: Promise<void> | undefined;
  private leaseRenewedAt = 0;
  private lastReconcileAt = 0;

  constructor(
    readonly queue: string,
    private readonly options: LifecycleExporterOptions,
  ) {
    const { prefix } = options;
    this.redis = duplicateBlockingConnection(options.connection);
    this.blocking = duplicateBlockingConnection(options.connection);
    this.redis.on('error', () => {});
    this.blocking.on('error', () => {});
    this.logger = (options.logger ?? silentLogger).child({ queue, component: 'lifecycle-exporter' });
    this.qp = `${queueKey(prefix, queue)}:`;
    this.jp = jobbersKey(prefix, queue, '');
    this.mp = `${prefix}:jobbers:metrics:`;
    this.stateKey = exporterStateKey(prefix, queue);
    this.leaderKey = jobbersKey(prefix, queue, 'exporter:leader');
    this.stream = `${this.qp}events`;
    this.batchSize = options.batchSize ?? 1000;
    this.blockMs = options.blockMs ?? 500;
    this.leaseMs = options.leaseMs ?? 10_000;
    this.reconcileMs = options.reconcileMs ?? 5000;
    this.minTurnMs = options.minTurnMs ?? 50;
    this.knownRoles = `,${(options.roles ?? []).join(',')},`;
    this.redis.defineCommand('jobbersApplyEvents', { numberOfKeys: 3, lua: applyEventsScript });
    this.redis.defineCommand('jobbersReconcile', { numberOfKeys: 1, lua: reconcileScript });
    this.redis.defineCommand('jobbersSwapRecount', { numberOfKeys: 2, lua: swapRecountScript });
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop() {
    this.running = false;
    this.blocking.disconnect();
    await this.loop;
    if (this.isLeader) {
      await this.redis
        .eval(
          "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
          1,
          this.leaderKey,
          this.token,
        )
        .catch(() => {});
    }
    this.isLeader = false;
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
        if (!this.running) break;
        this.logger.warn({ err: (error as Error).message }, 'lifecycle exporter turn failed; retrying');
        await this.pause(500);
      }
    }
  }

  private pause(ms: number) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Takes or renews the per-queue leadership; false when another process leads. */
  private async holdLease(): Promise<boolean> {
    const now = Date.now();
    if (this.isLeader && now - this.leaseRenewedAt < this.leaseMs / 3) return true;
    const renewed = await this.redis.eval(
      `local v = redis.call('GET', KEYS[1])
       if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
       if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
       return 0`,
      1,
      this.leaderKey,
      this.token,
      this.leaseMs,
    );
    const wasLeader = this.isLeader;
    this.isLeader = renewed !== 0;
    if (this.isLeader) this.leaseRenewedAt = now;
    if (this.isLeader !== wasLeader)
      this.logger.info({ leader: this.isLeader }, 'lifecycle exporter leadership changed');
    return this.isLeader;
  }

  private async turn() {
    if (this.recountRequested) {
      this.recountRequested = false;
      await this.recount('requested');
      return;
    }
    const [applied, recountAsked] = await (
      this.redis as unknown as Record<string, (...a: unknown[]) => Promise<[number, number]>>
    ).jobbersApplyEvents!(
      this.stateKey,
      this.leaderKey,
      this.stream,
      this.token,
      this.qp,
      this.jp,
      this.mp,
      this.queue,
      this.knownRoles,
      latencyBuckets.join(' '),
      this.batchSize,
    );
    if (applied === -1) {
      this.isLeader = false;
    } else if (applied === -2) {
      await this.recount('no position yet');
    } else if (applied === -3) {
      await this.recount('event stream is gone');
    } else if (applied === -4) {
      await this.recount('event stream trimmed past the position: events were never applied');
    } else if (applied === 0) {
      const pos = (await this.redis.hget(this.stateKey, 'pos')) ?? '0-0';
      await this.reconcileIfDue(pos);
      await this.waitForEvents(pos);
    } else {
      if (recountAsked === 1) this.recountRequested = true;
      if (applied < this.batchSize - 1 && this.minTurnMs > 0) await this.pause(this.minTurnMs);
    }
  }

  private async waitForEvents(pos: string) {
    if (!this.running) return;
    try {
      await this.blocking.xread('COUNT', 1, 'BLOCK', this.blockMs, 'STREAMS', this.stream, pos);
    } catch (error) {
      if (this.running) throw error;
    }
  }

  private async reconcileIfDue(pos: string) {
    if (Date.now() - this.lastReconcileAt < this.reconcileMs) return;
    this.lastReconcileAt = Date.now();
    const [lastId, storedPos, ...counts] = (await (
      this.redis as unknown as Record<string, (...a: unknown[]) => Promise<(string | number)[]>>
    ).jobbersReconcile!(this.stateKey, this.qp, this.jp)) as [string, string, ...number[]];
    if (lastId !== pos || storedPos !== pos) return;
    const [trueAvail, ourAvail, trueActive, ourActive, trueFailed, ourFailed] = counts.map(Number);
    if (trueAvail !== ourAvail || trueActive !== ourActive || trueFailed !== ourFailed) {
      await this.recount(
        `bookkeeping drifted from BullMQ (available ${ourAvail}/${trueAvail}, active ${ourActive}/${trueActive}, failed ${ourFailed}/${trueFailed})`,
      );
    }
  }

  private async recount(reason: string): Promise<RecountResult | undefined> {
    this.logger.info({ reason }, 'recounting queue state from BullMQ');
    const result = await recountQueue(this.redis, this.options.prefix, this.queue);
    const swapped = await (this.redis as unknown as Record<string, (...a: unknown[]) => Promise<number>>)
      .jobbersSwapRecount!(
      this.stateKey,
      this.leaderKey,
      this.token,
      this.jp,
      result.recountPrefix,
      result.streamPos,
      result.streamAdded,
      ...result.tasks,
    );
    if (swapped === -1) {
      this.isLeader = false;
      return undefined;
    }
    this.lastReconcileAt = Date.now();
    return result;
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
