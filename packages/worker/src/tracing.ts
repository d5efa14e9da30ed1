// The execution span of one attempt: a CONSUMER child of the submit span whose context the job carries.
import {
  contextFromTraceparent,
  type JobPayload,
  jobbersTracer,
  queueOfStorage,
  recordSpanFailure,
  spanAttributes,
  tracingEnabled,
} from '@jobbers/core';
import { SpanKind } from '@opentelemetry/api';
import type { Job } from 'bullmq';

export function traceExecution<T>(job: Job<JobPayload>, run: () => Promise<T>): Promise<T> {
  if (!tracingEnabled()) return run();
  const attributes = {
    [spanAttributes.taskId]: job.id ?? '',
    [spanAttributes.taskType]: job.name,
    [spanAttributes.queue]: queueOfStorage(job.queueName),
    [spanAttributes.attempt]: job.attemptsStarted || job.attemptsMade + 1,
    [spanAttributes.messagingSystem]: 'jobbers',
    [spanAttributes.messagingOperation]: 'process',
    [spanAttributes.messagingDestination]: job.queueName,
    [spanAttributes.messageId]: job.id ?? '',
  };
  return jobbersTracer().startActiveSpan(
    `execute ${job.name}`,
    { kind: SpanKind.CONSUMER, attributes },
    contextFromTraceparent(job.data?.traceparent),
    async (span) => {
      try {
        return await run();
      } catch (error) {
        recordSpanFailure(span, error);
        throw error;
      } finally {
        span.end();
      }
    },
  );
}
