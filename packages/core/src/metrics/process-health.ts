// Per-process counters of what a process recovered from: failed metrics flushes, increments dropped
// by a full buffer, and errors it logged and carried on after (jobbers_process_errors_total).
import { Counter, type Registry } from 'prom-client';
import { metricsFlushHealth } from './store.js';

const processErrors = new Map<string, number>();

/**
 * Counts an error this process logged and carried on after, by what it was doing (`operation`, a
 * fixed name such as `adopt-handed-over-job`): jobbers_process_errors_total{operation}.
 */
export function countProcessError(operation: string): void {
  processErrors.set(operation, (processErrors.get(operation) ?? 0) + 1);
}

/** Registers jobbers_metrics_flush_failures_total, _dropped_increments_total and _process_errors_total. */
export function registerProcessHealthMetrics(registry: Registry): void {
  new Counter({
    name: 'jobbers_metrics_flush_failures_total',
    help: 'Writes of buffered cluster metrics to Redis that failed in this process (each is retried)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(metricsFlushHealth.failures);
    },
  });
  new Counter({
    name: 'jobbers_metrics_dropped_increments_total',
    help: 'Metric increments this process dropped because its buffer was full while Redis refused writes',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(metricsFlushHealth.droppedIncrements);
    },
  });
  new Counter({
    name: 'jobbers_process_errors_total',
    help: 'Errors this process logged and carried on after, by the operation that failed',
    labelNames: ['operation'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [operation, count] of processErrors) this.inc({ operation }, count);
    },
  });
}
