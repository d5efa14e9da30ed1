// OpenTelemetry tracing: starts the Node SDK from the standard OTEL_* variables (off when none
// names an exporter) and carries W3C trace context through a job's `traceparent`.
import {
  type Attributes,
  type Context,
  context,
  isValidSpanId,
  isValidTraceId,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';

/** Span attribute names shared by the submit and execute spans. */
export const spanAttributes = {
  taskId: 'jobbers.task.id',
  taskType: 'jobbers.task.type',
  queue: 'jobbers.queue',
  attempt: 'jobbers.attempt',
  created: 'jobbers.task.created',
  messagingSystem: 'messaging.system',
  messagingOperation: 'messaging.operation.type',
  messagingDestination: 'messaging.destination.name',
  messageId: 'messaging.message.id',
} as const;

export interface Tracing {
  /** Flushes pending spans and stops the SDK. */
  shutdown(): Promise<void>;
}

let enabled = false;

/** True once startTracing has started the SDK; hot paths skip every span call otherwise. */
export function tracingEnabled(): boolean {
  return enabled;
}

/**
 * Tracing is on when OTEL_TRACES_EXPORTER names an exporter, or when an OTLP endpoint is set
 * (the exporter then defaults to otlp). OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off.
 */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (exporters.includes('none')) return false;
  return (
    exporters.length > 0 ||
    Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim()) ||
    Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim())
  );
}

/**
 * Starts the OpenTelemetry Node SDK for traces, configured only by OTEL_* variables. Returns
 * undefined, loading nothing, when tracing is not requested. `serviceName` applies only when
 * neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES names the service.
 */
export async function startTracing(serviceName: string): Promise<Tracing | undefined> {
  if (!tracingRequested()) return undefined;
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const namedByEnv =
    Boolean(process.env.OTEL_SERVICE_NAME) ||
    /(^|,)\s*service\.name=/.test(process.env.OTEL_RESOURCE_ATTRIBUTES ?? '');
  const sdk = new NodeSDK({
    serviceName: namedByEnv ? undefined : serviceName,
    instrumentations: [],
    // Jobbers metrics are served to Prometheus on /metrics and logs go through pino: traces only.
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  enabled = true;
  return {
    shutdown: async () => {
      enabled = false;
      await sdk.shutdown();
    },
  };
}

export function jobbersTracer(): Tracer {
  return trace.getTracer('jobbers');
}

/** The W3C `traceparent` of the span in `ctx`, or undefined when it holds no valid span. */
export function traceparentOf(ctx: Context): string | undefined {
  const spanContext = trace.getSpanContext(ctx);
  if (!spanContext || !isValidTraceId(spanContext.traceId) || !isValidSpanId(spanContext.spanId))
    return undefined;
  const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, '0');
  return `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
}

const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** A context whose remote parent is the W3C `traceparent`; the root context when it is absent or invalid. */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  const match = traceparent ? traceparentPattern.exec(traceparent.trim().toLowerCase()) : null;
  if (!match || match[1] === 'ff' || (match[1] === '00' && match[5] !== undefined)) return ROOT_CONTEXT;
  const [, , traceId, spanId, flags] = match as unknown as [string, string, string, string, string];
  if (!isValidTraceId(traceId) || !isValidSpanId(spanId)) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16) & 0x01,
    isRemote: true,
  });
}

export function recordSpanFailure(span: Span, error: unknown): void {
  const err = error instanceof Error ? error : new Error(String(error));
  span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
}

export interface TracedSubmission {
  id: string;
  task: string;
  queue: string;
  payload: { traceparent?: string };
}

/**
 * Runs `enqueue` inside one PRODUCER span per submission. Each span is a child of the submission's
 * incoming traceparent (when given), and its own context replaces that traceparent in the payload,
 * so the worker's execution span becomes its child.
 */
export async function traceSubmissions<R extends { created: boolean }>(
  submissions: TracedSubmission[],
  enqueue: () => Promise<R[]>,
): Promise<R[]> {
  if (!enabled) return enqueue();
  const tracer = jobbersTracer();
  const spans = submissions.map((s) => {
    const attributes: Attributes = {
      [spanAttributes.taskId]: s.id,
      [spanAttributes.taskType]: s.task,
      [spanAttributes.queue]: s.queue,
      [spanAttributes.messagingSystem]: 'jobbers',
      [spanAttributes.messagingOperation]: 'send',
      [spanAttributes.messagingDestination]: s.queue,
      [spanAttributes.messageId]: s.id,
    };
    const span = tracer.startSpan(
      `submit ${s.task}`,
      { kind: SpanKind.PRODUCER, attributes },
      contextFromTraceparent(s.payload.traceparent),
    );
    const own = traceparentOf(trace.setSpan(context.active(), span));
    if (own) s.payload.traceparent = own;
    return span;
  });
  try {
    const results = await enqueue();
    for (const [i, r] of results.entries()) spans[i]?.setAttribute(spanAttributes.created, r.created);
    return results;
  } catch (error) {
    for (const span of spans) recordSpanFailure(span, error);
    throw error;
  } finally {
    for (const span of spans) span.end();
  }
}
