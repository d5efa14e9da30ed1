// Task outcomes observed where they happen: processed, execution time, end-to-end latency,
// retries, execution timeouts and rejected completions, buffered and flushed to Redis
// (cluster-wide, shared).
import {
  clusterMetrics,
  type MetricsBuffer,
  type NodeAdvance,
  queueOfStorage,
  scheduledTickOf,
} from '@jobbers/core';
import type { Job } from 'bullmq';

export function isTimeoutError(error: Error | undefined): boolean {
  return Boolean(error?.message?.startsWith('[timeout]'));
}

/** After a successful moveToCompleted. */
export function recordCompleted(buffer: MetricsBuffer, job: Job): void {
  const now = job.finishedOn ?? Date.now();
  const labels = [queueOfStorage(job.queueName), job.name, 'completed'];
  buffer.increment(clusterMetrics.tasksProcessed, labels);
  if (job.processedOn) buffer.observe(clusterMetrics.executionTime, labels, (now - job.processedOn) / 1000);
  buffer.observe(clusterMetrics.endToEndLatency, labels, (now - job.timestamp) / 1000);
}

/** After a successful moveToFailed: final (incident) when BullMQ set finishedOn, else a retry. */
export function recordFailed(buffer: MetricsBuffer, job: Job, error: Error): void {
  const final = Boolean(job.finishedOn);
  const now = job.finishedOn || Date.now();
  if (isTimeoutError(error))
    buffer.increment(clusterMetrics.tasksTimedOut, [queueOfStorage(job.queueName), job.name]);
  if (final) {
    const labels = [queueOfStorage(job.queueName), job.name, 'failed'];
    buffer.increment(clusterMetrics.tasksProcessed, labels);
    buffer.observe(clusterMetrics.endToEndLatency, labels, (now - job.timestamp) / 1000);
    if (job.processedOn) buffer.observe(clusterMetrics.executionTime, labels, (now - job.processedOn) / 1000);
    return;
  }
  buffer.increment(clusterMetrics.tasksRetried, [queueOfStorage(job.queueName), job.name]);
  if (job.processedOn) {
    buffer.observe(
      clusterMetrics.executionTime,
      [queueOfStorage(job.queueName), job.name, 'retried'],
      (now - job.processedOn) / 1000,
    );
  }
}

/** A completion from a worker that had lost the job: Redis refused it, nothing was applied. */
export function recordRejectedCompletion(buffer: MetricsBuffer, job: Job): void {
  buffer.increment(clusterMetrics.completionsRejected, [queueOfStorage(job.queueName), job.name]);
}

/** The step that finished a workflow (its last node, or a node whose failure fails it). */
export function recordWorkflowFinished(buffer: MetricsBuffer, step: NodeAdvance): void {
  buffer.increment(clusterMetrics.workflowsFinished, [step.name, step.state]);
  buffer.observe(clusterMetrics.workflowDuration, [step.name], (Date.now() - step.createdAtMs) / 1000);
}

/** A schedule's run starting for the first time: one run of the schedule, and how late it started. */
export function recordScheduledRun(buffer: MetricsBuffer, job: Job, attempt: number): void {
  const tick = scheduledTickOf(job);
  if (!tick || attempt !== 1) return;
  const labels = [queueOfStorage(job.queueName), job.name, tick.scheduleId];
  buffer.increment(clusterMetrics.scheduleRuns, labels);
  const startedAt = job.processedOn ?? Date.now();
  buffer.observe(clusterMetrics.scheduleLateness, labels, Math.max(0, startedAt - tick.tickMs) / 1000);
}
