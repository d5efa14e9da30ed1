import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  contextFromTraceparent,
  traceparentOf,
  traceSubmissions,
  tracingEnabled,
  tracingRequested,
} from '@jobbers/core';
import { ROOT_CONTEXT } from '@opentelemetry/api';

test('tracing is requested only when an exporter or an OTLP endpoint is configured', () => {
  assert.equal(tracingRequested({}), false);
  assert.equal(tracingRequested({ OTEL_SERVICE_NAME: 'x', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), false);
  assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true);
  assert.equal(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }), true);
  assert.equal(tracingRequested({ OTEL_TRACES_EXPORTER: 'console' }), true);
  assert.equal(
    tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }),
    false,
  );
  assert.equal(
    tracingRequested({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }),
    false,
  );
});

test('a W3C traceparent round-trips through a context', () => {
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  assert.equal(traceparentOf(contextFromTraceparent(traceparent)), traceparent);
  const unsampled = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00';
  assert.equal(traceparentOf(contextFromTraceparent(unsampled)), unsampled);
});

test('absent or malformed traceparents give the root context', () => {
  for (const bad of [
    undefined,
    '',
    'garbage',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
  ]) {
    assert.equal(contextFromTraceparent(bad), ROOT_CONTEXT, String(bad));
  }
});

test('with tracing off, submissions keep the caller traceparent and create no spans', async () => {
  assert.equal(tracingEnabled(), false);
  const submission = {
    id: 'a',
    task: 't',
    queue: 'q',
    payload: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
  };
  const results = await traceSubmissions([submission], async () => [{ created: true }]);
  assert.deepEqual(results, [{ created: true }]);
  assert.equal(submission.payload.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
});
