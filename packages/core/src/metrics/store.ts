// Cluster-wide metric storage in Redis: one hash per metric, a field per label set (and bucket).
// Processes add to it in batches (MetricsBuffer); the manager reads it for /metrics.
import type { Redis } from 'ioredis';
import { metricsKey } from '../keys.js';
import { bucketIndex, labelField, type MetricDefinition } from './definitions.js';

export function metricHashKey(prefix: string, metric: MetricDefinition): string {
  return metricsKey(prefix, metric.name);
}

/**
 * Buffers counter increments and histogram observations in memory and flushes them to Redis
 * every flushMs and on close, so a process that exits gracefully loses nothing and one that is
 * SIGKILLed loses at most one interval.
 */
export class MetricsBuffer {
  private pending = new Map<string, Map<string, number>>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly flushMs = 1000,
  ) {}

  start(): this {
    this.timer ??= setInterval(() => void this.flush().catch(() => {}), this.flushMs);
    this.timer.unref();
    return this;
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
    const fields = this.pending.get(key) ?? new Map<string, number>();
    this.pending.set(key, fields);
    fields.set(field, (fields.get(field) ?? 0) + value);
  }

  /** Writes everything buffered in one MULTI; on failure the increments are kept for the next flush. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pending.size === 0) return;
      const batch = this.pending;
      this.pending = new Map();
      const multi = this.redis.multi();
      for (const [key, fields] of batch) {
        for (const [field, value] of fields) {
          if (Number.isInteger(value)) multi.hincrby(key, field, value);
          else multi.hincrbyfloat(key, field, value);
        }
      }
      try {
        await multi.exec();
      } catch (error) {
        for (const [key, fields] of batch) for (const [field, value] of fields) this.add(key, field, value);
        throw error;
      }
    });
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
