// Task outcomes observed where they happen: processed, execution time, end-to-end latency,
// retries and execution timeouts, buffered and flushed to Redis (cluster-wide, shared).
import { clusterMetrics, type MetricsBuffer } from '@jobbers/core';
import type { Job, Worker } from 'bullmq';

export function isTimeoutError(error: Error | undefined): boolean {
  return Boolean(error?.message?.startsWith('[timeout]'));
}

export function attachOutcomeMetrics(worker: Worker, buffer: MetricsBuffer): void {
  worker.on('completed', (job: Job) => {
    const now = job.finishedOn ?? Date.now();
    const labels = [job.queueName, job.name, 'completed'];
    buffer.increment(clusterMetrics.tasksProcessed, labels);
    if (job.processedOn) buffer.observe(clusterMetrics.executionTime, labels, (now - job.processedOn) / 1000);
    buffer.observe(clusterMetrics.endToEndLatency, labels, (now - job.timestamp) / 1000);
  });
  worker.on('failed', (job: Job | undefined, error: Error) => {
    if (!job) return;
    const final = job.finishedOn !== undefined;
    const now = job.finishedOn ?? Date.now();
    if (isTimeoutError(error)) buffer.increment(clusterMetrics.tasksTimedOut, [job.queueName, job.name]);
    if (final) {
      const labels = [job.queueName, job.name, 'failed'];
      buffer.increment(clusterMetrics.tasksProcessed, labels);
      buffer.observe(clusterMetrics.endToEndLatency, labels, (now - job.timestamp) / 1000);
      if (job.processedOn)
        buffer.observe(clusterMetrics.executionTime, labels, (now - job.processedOn) / 1000);
    } else {
      buffer.increment(clusterMetrics.tasksRetried, [job.queueName, job.name]);
      if (job.processedOn) {
        buffer.observe(
          clusterMetrics.executionTime,
          [job.queueName, job.name, 'retried'],
          (now - job.processedOn) / 1000,
        );
      }
    }
  });
}
