// Cluster-wide metric storage in Redis: one hash per metric, a field per label set (and bucket).
// Processes add to it in batches (MetricsBuffer); the manager reads it for /metrics.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { isSlotPerQueue, metricsKey, queueMetricsKey } from '../keys.js';
import { scripts } from '../lua/registry.js';
import { execPerNode } from '../redis.js';
import { bucketIndex, labelField, type MetricDefinition } from './definitions.js';

/** The hash of a metric without a queue label (or of every queue's series when queues share a slot). */
export function metricHashKey(prefix: string, metric: MetricDefinition): string {
  return metricsKey(prefix, metric.name);
}

/** The hash holding one queue's series of a metric whose first label is the queue. */
export function queueMetricHashKey(prefix: string, queue: string, metric: MetricDefinition): string {
  return queueMetricsKey(prefix, queue, metric.name);
}

/** True when a metric's series are stored per queue (its first label is the queue). */
export function isPerQueueMetric(metric: MetricDefinition): boolean {
  return metric.labelNames[0] === 'queue';
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

/** Series names kept per metric; past this (label values beyond the task types) it starts over. */
const maxCachedSeries = 10_000;

/** A series' hash and fields (and, for a histogram, its bucket, sum and count fields). */
interface Series {
  key: string;
  field: string;
  buckets: string[];
  sum: string;
  count: string;
}

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
  private readonly processId = randomBytes(8).toString('hex');
  /**
   * The queue whose slot each metric hash lives in ('' for keys outside any queue's slot): one
   * script call per slot applies a batch, each recording the batch in a key of that slot.
   */
  private readonly keySlotGroup = new Map<string, string>();
  /** Names of the series recorded so far, per metric and label set (at most maxCachedSeries each). */
  private readonly series = new Map<MetricDefinition, Map<string, Series>>();
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
    const series = this.seriesOf(metric, labels);
    this.add(series.key, series.field, value);
  }

  observe(metric: MetricDefinition, labels: readonly string[], valueSeconds: number): void {
    const series = this.seriesOf(metric, labels);
    this.add(series.key, series.buckets[bucketIndex(metric.buckets ?? [], valueSeconds)]!, 1);
    this.add(series.key, series.sum, valueSeconds);
    this.add(series.key, series.count, 1);
  }

  /**
   * The hash and field names of a metric's series, built once per label set: a busy worker
   * records three series per task, and building their names each time cost more than adding.
   */
  private seriesOf(metric: MetricDefinition, labels: readonly string[]): Series {
    let byField = this.series.get(metric);
    if (!byField) {
      byField = new Map();
      this.series.set(metric, byField);
    }
    const field = labelField(labels);
    let series = byField.get(field);
    if (!series) {
      if (byField.size >= maxCachedSeries) byField.clear();
      // A histogram's fields: one per bucket (and the +Inf bucket past the last), sum and count.
      const buckets = Array.from({ length: (metric.buckets?.length ?? 0) + 1 }, (_, i) => `${field}|b${i}`);
      series = {
        key: this.keyOf(metric, labels),
        field,
        buckets,
        sum: `${field}|sum`,
        count: `${field}|count`,
      };
      byField.set(field, series);
    }
    return series;
  }

  private keyOf(metric: MetricDefinition, labels: readonly string[]): string {
    if (!isPerQueueMetric(metric) || labels[0] === undefined) return metricHashKey(this.prefix, metric);
    const key = queueMetricHashKey(this.prefix, labels[0], metric);
    if (!this.keySlotGroup.has(key)) this.keySlotGroup.set(key, isSlotPerQueue(this.prefix) ? labels[0] : '');
    return key;
  }

  private appliedKey(group: string): string {
    return group === ''
      ? metricsKey(this.prefix, `applied:${this.processId}`)
      : queueMetricsKey(this.prefix, group, `applied:${this.processId}`);
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

  /**
   * One script call per slot group, all at once. A batch that failed in some groups is retried whole:
   * the groups that applied it already skip it by its sequence number.
   */
  private async apply(seq: number, batch: Batch): Promise<void> {
    const groups = new Map<string, string[]>();
    for (const key of batch.keys()) {
      const group = this.keySlotGroup.get(key) ?? '';
      const keys = groups.get(group);
      if (keys) keys.push(key);
      else groups.set(group, [key]);
    }
    const calls = [...groups].map(([group, metricKeys]) => {
      const keys = [this.appliedKey(group), ...metricKeys];
      const args: (string | number)[] = [seq, appliedSeqTtlSeconds];
      metricKeys.forEach((key, i) => {
        for (const [field, value] of batch.get(key)!) {
          args.push(i + 2, isFloatField(field, value) ? 'f' : 'i', field, value);
        }
      });
      return { keys, args };
    });
    // Applied once: a batch retried after an ambiguous failure is recognised by its sequence.
    if (calls.length === 1) {
      const { keys, args } = calls[0]!;
      await scripts.metricsApplyBatch.run(this.redis, keys, args);
      return;
    }
    scripts.metricsApplyBatch.define(this.redis);
    await execPerNode(
      this.redis,
      calls.map(({ keys, args }) => ({
        key: keys[0]!,
        add: (pipeline) => scripts.metricsApplyBatch.queue(pipeline, keys, args),
      })),
    );
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
