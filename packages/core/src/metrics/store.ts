// Cluster-wide metric storage in Redis: one hash per metric, a field per label set (and bucket).
// Processes add to it in batches (MetricsBuffer); the manager reads it for /metrics.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { metricsKey } from '../keys.js';
import { scripts } from '../lua/registry.js';
import { bucketIndex, labelField, type MetricDefinition } from './definitions.js';

export function metricHashKey(prefix: string, metric: MetricDefinition): string {
  return metricsKey(prefix, metric.name);
}

/**
 * How this process fares at writing its metrics to Redis, read by its /metrics
 * (jobbers_metrics_flush_failures_total, jobbers_metrics_dropped_increments_total).
 */
export const metricsFlushHealth = { failures: 0, droppedIncrements: 0 };

/**
 * How long Redis remembers a process's last applied batch. A batch is in doubt only when Redis
 * applied it and the reply was lost; its retry goes out as soon as Redis answers again, so an hour
 * covers any cut between the two, and a recycled worker's key is gone an hour after it exits.
 */
const appliedSeqTtlSeconds = 3600;

export interface MetricsBufferOptions {
  /** @default 1000 */
  flushMs?: number;
  /**
   * Distinct (metric, label set, bucket) fields held while Redis refuses writes. Adding to a held
   * field always works; a new field past the bound is dropped and counted in
   * jobbers_metrics_dropped_increments_total. Label values are bounded by the registered task types,
   * so the bound is reached only with thousands of task types.
   * @default 100000
   */
  maxPendingFields?: number;
  /** Where a failure streak (one line) and the recovery (one line) are logged. */
  logger?: MetricsFlushLogger;
}

/** The two pino methods the buffer logs with. */
export interface MetricsFlushLogger {
  warn(fields: { err: unknown; heldFields: number }, message: string): void;
  info(fields: { failedForMs: number; failedFlushes: number }, message: string): void;
}

/** Histogram sums take fractions; a sum that happens to be whole is still written as a float. */
function isFloatField(field: string, value: number): boolean {
  return field.endsWith('|sum') || !Number.isInteger(value);
}

type Batch = Map<string, Map<string, number>>;

/**
 * Buffers counter increments and histogram observations in memory and flushes them to Redis
 * every flushMs and on close, so a process that exits gracefully loses nothing and one that is
 * SIGKILLed loses at most one interval. A flush that fails keeps its batch and retries it, exactly
 * once applied, before anything newer; later flushes are never skipped because of it.
 */
export class MetricsBuffer {
  private pending: Batch = new Map();
  private pendingFields = 0;
  /** A batch sent that failed; it is retried, with its sequence number, before the next one. */
  private unsent: { seq: number; batch: Batch; fields: number } | undefined;
  private seq = 0;
  private readonly appliedKey: string;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<boolean> | undefined;
  private failingSince: number | undefined;
  private streakFailures = 0;
  private readonly flushMs: number;
  private readonly maxPendingFields: number;
  private readonly logger: MetricsFlushLogger | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    options: MetricsBufferOptions = {},
  ) {
    this.flushMs = options.flushMs ?? 1000;
    this.maxPendingFields = options.maxPendingFields ?? 100_000;
    this.logger = options.logger;
    this.appliedKey = metricsKey(prefix, `applied:${randomBytes(8).toString('hex')}`);
  }

  start(): this {
    this.timer ??= setInterval(() => void this.flush(), this.flushMs);
    this.timer.unref();
    return this;
  }

  private get isEmpty(): boolean {
    return this.pendingFields === 0 && !this.unsent;
  }

  /** True while the last flush failed: increments are held in memory. */
  get isFailing(): boolean {
    return this.failingSince !== undefined;
  }

  increment(metric: MetricDefinition, labels: readonly string[], value = 1): void {
    this.add(metricHashKey(this.prefix, metric), labelField(labels), value);
  }

  observe(metric: MetricDefinition, labels: readonly string[], valueSeconds: number): void {
    const key = metricHashKey(this.prefix, metric);
    const field = labelField(labels);
    this.add(key, `${field}${'|'}b${bucketIndex(metric.buckets ?? [], valueSeconds)}`, 1);
    this.add(key, `${field}|sum`, valueSeconds);
    this.add(key, `${field}|count`, 1);
  }

  private add(key: string, field: string, value: number) {
    let fields = this.pending.get(key);
    const held = fields?.get(field);
    if (held !== undefined) {
      fields!.set(field, held + value);
      return;
    }
    if (this.pendingFields + (this.unsent?.fields ?? 0) >= this.maxPendingFields) {
      metricsFlushHealth.droppedIncrements++;
      return;
    }
    if (!fields) {
      fields = new Map();
      this.pending.set(key, fields);
    }
    fields.set(field, value);
    this.pendingFields++;
  }

  /**
   * Writes what is buffered (a failed batch first). Never rejects: resolves true when everything
   * buffered when it started is in Redis, false when a write failed (the batch is kept and retried).
   */
  flush(): Promise<boolean> {
    this.flushing ??= this.writeAll().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async writeAll(): Promise<boolean> {
    try {
      if (!this.unsent && this.pendingFields > 0) {
        this.unsent = { seq: ++this.seq, batch: this.pending, fields: this.pendingFields };
        this.pending = new Map();
        this.pendingFields = 0;
      }
      if (this.unsent) {
        await this.apply(this.unsent.seq, this.unsent.batch);
        this.unsent = undefined;
      }
      this.recovered();
      return true;
    } catch (error) {
      this.failed(error);
      return false;
    }
  }

  private async apply(seq: number, batch: Batch): Promise<void> {
    const keys = [this.appliedKey, ...batch.keys()];
    const args: (string | number)[] = [seq, appliedSeqTtlSeconds];
    let keyIndex = 2;
    for (const fields of batch.values()) {
      for (const [field, value] of fields) {
        args.push(keyIndex, isFloatField(field, value) ? 'f' : 'i', field, value);
      }
      keyIndex++;
    }
    // Applied once: a batch retried after an ambiguous failure is recognised by its sequence.
    await scripts.metricsApplyBatch.run(this.redis, keys, args);
  }

  private failed(error: unknown) {
    metricsFlushHealth.failures++;
    this.streakFailures++;
    if (this.failingSince !== undefined) return;
    this.failingSince = Date.now();
    this.logger?.warn(
      { err: error, heldFields: this.pendingFields + (this.unsent?.fields ?? 0) },
      'metrics flush failed: holding increments in memory and retrying every flush interval',
    );
  }

  private recovered() {
    if (this.failingSince === undefined) return;
    this.logger?.info(
      { failedForMs: Date.now() - this.failingSince, failedFlushes: this.streakFailures },
      'metrics flush recovered: held increments written',
    );
    this.failingSince = undefined;
    this.streakFailures = 0;
  }

  /**
   * Stops the timer and writes what is left, retrying every flush interval for up to retryForMs.
   * Resolves true when everything is in Redis, false when it gave up (the increments are lost).
   */
  async close(retryForMs = 0): Promise<boolean> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const deadline = Date.now() + retryForMs;
    for (;;) {
      const written = await this.flush();
      if (written && this.isEmpty) return true;
      if (written) continue;
      if (Date.now() + this.flushMs > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, this.flushMs));
    }
  }
}
