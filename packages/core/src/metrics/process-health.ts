// Per-process counters of what a process recovered from: failed metrics flushes, increments dropped
// by a full buffer, and errors it logged and carried on after (jobbers_process_errors_total).
import { Counter, type Registry } from 'prom-client';
import { processMetrics, promMetricOptions } from './definitions.js';
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
    ...promMetricOptions(processMetrics.metricsFlushFailures),
    registers: [registry],
    collect() {
      this.reset();
      this.inc(metricsFlushHealth.failures);
    },
  });
  new Counter({
    ...promMetricOptions(processMetrics.metricsDroppedIncrements),
    registers: [registry],
    collect() {
      this.reset();
      this.inc(metricsFlushHealth.droppedIncrements);
    },
  });
  new Counter({
    ...promMetricOptions(processMetrics.processErrors),
    registers: [registry],
    collect() {
      this.reset();
      for (const [operation, count] of processErrors) this.inc({ operation }, count);
    },
  });
}
