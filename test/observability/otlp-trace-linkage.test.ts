// Real OTLP spans from a real manager and worker: the submit span is the parent of every execution span.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import {
  type ManagerProcess,
  startManagerProcess,
  startWorkerProcess,
  taskFinished,
  type WorkerProcess,
} from '../support/stack.js';
import { waitFor } from '../support/wait.js';

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  status: { code?: number; message?: string };
  events: { name: string }[];
  attributes: Record<string, unknown>;
}

const spanKind = { producer: 4, consumer: 5 };
const statusError = 2;

/** A minimal OTLP/HTTP JSON receiver: POST /v1/traces. */
function startReceiver() {
  const spans: ReceivedSpan[] = [];
  const contentTypes = new Set<string>();
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c) => chunks.push(c));
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/v1/traces') {
        response.writeHead(404).end();
        return;
      }
      contentTypes.add(String(request.headers['content-type']));
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const rs of body.resourceSpans ?? []) {
        const service = attributeMap(rs.resource?.attributes)['service.name'] as string;
        for (const ss of rs.scopeSpans ?? []) {
          for (const span of ss.spans ?? []) {
            spans.push({
              service,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              name: span.name,
              kind: span.kind,
              status: span.status ?? {},
              events: span.events ?? [],
              attributes: attributeMap(span.attributes),
            });
          }
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise<{ server: http.Server; url: string; spans: ReceivedSpan[]; contentTypes: Set<string> }>(
    (resolve) => {
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        resolve({ server, url: `http://127.0.0.1:${port}`, spans, contentTypes });
      });
    },
  );
}

function attributeMap(list: { key: string; value: Record<string, unknown> }[] = []) {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list) {
    const v = value.stringValue ?? value.intValue ?? value.boolValue ?? value.doubleValue;
    out[key] = typeof v === 'string' && value.intValue !== undefined ? Number(v) : v;
  }
  return out;
}

let redis: RedisServer;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let manager: ManagerProcess;
let worker: WorkerProcess;

before(async () => {
  [redis, receiver] = await Promise.all([startRedisServer(), startReceiver()]);
  const prefix = uniquePrefix('otlp');
  const otel = {
    REDIS_URL: redis.url,
    JOBBERS_PREFIX: prefix,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '50',
    OTEL_TRACES_SAMPLER: 'parentbased_always_on',
    OTEL_TRACES_EXPORTER: '',
    OTEL_SERVICE_NAME: '',
    OTEL_RESOURCE_ATTRIBUTES: '',
  };
  [manager, worker] = await Promise.all([
    startManagerProcess(otel),
    startWorkerProcess({ ...otel, WORKER_CONCURRENT_TASKS: '4' }),
  ]);
});

after(async () => {
  await Promise.all([manager?.stop(), worker?.stop()]);
  await redis?.stop();
  receiver?.server.close();
});

function spansOfTask(id: string, kind: number): ReceivedSpan[] {
  return receiver.spans.filter((s) => s.kind === kind && s.attributes['jobbers.task.id'] === id);
}

async function waitForSpans(id: string, executions: number) {
  return waitFor(
    () => {
      const submit = spansOfTask(id, spanKind.producer);
      const execute = spansOfTask(id, spanKind.consumer);
      return submit.length === 1 && execute.length >= executions
        ? { submit: submit[0]!, execute }
        : undefined;
    },
    { timeoutMs: 15_000, what: `spans of task ${id}` },
  );
}

test('the worker execution span of an echo is a child of the manager submit span, which continues the caller trace', async () => {
  const callerTraceId = randomBytes(16).toString('hex');
  const callerSpanId = randomBytes(8).toString('hex');
  const submitted = await manager.request(
    'POST',
    '/v1/tasks',
    { task: 'example.echo', params: { hello: 'traces' } },
    { traceparent: `00-${callerTraceId}-${callerSpanId}-01` },
  );
  assert.equal(submitted.status, 201);
  const id = submitted.body.id as string;
  assert.equal((await taskFinished(manager, id)).state, 'completed');

  const { submit, execute } = await waitForSpans(id, 1);
  assert.equal(execute.length, 1);
  const [run] = execute as [ReceivedSpan];

  assert.equal(submit.service, 'jobbers-manager');
  assert.equal(submit.traceId, callerTraceId);
  assert.equal(submit.parentSpanId, callerSpanId);
  assert.deepEqual(
    {
      id: submit.attributes['jobbers.task.id'],
      type: submit.attributes['jobbers.task.type'],
      queue: submit.attributes['jobbers.queue'],
      created: submit.attributes['jobbers.task.created'],
    },
    { id, type: 'example.echo', queue: 'default', created: true },
  );

  assert.equal(run.service, 'jobbers-worker');
  assert.equal(run.traceId, submit.traceId);
  assert.equal(run.parentSpanId, submit.spanId);
  assert.deepEqual(
    {
      id: run.attributes['jobbers.task.id'],
      type: run.attributes['jobbers.task.type'],
      queue: run.attributes['jobbers.queue'],
      attempt: run.attributes['jobbers.attempt'],
    },
    { id, type: 'example.echo', queue: 'default', attempt: 1 },
  );
  assert.notEqual(run.status.code, statusError);
  assert.ok([...receiver.contentTypes].every((t) => t.startsWith('application/json')));
});

test('without an incoming traceparent the submit span starts the trace', async () => {
  const submitted = await manager.request('POST', '/v1/tasks', { task: 'example.echo', params: {} });
  const id = submitted.body.id as string;
  await taskFinished(manager, id);
  const { submit, execute } = await waitForSpans(id, 1);
  assert.equal(submit.parentSpanId, '');
  assert.equal(execute[0]!.traceId, submit.traceId);
  assert.equal(execute[0]!.parentSpanId, submit.spanId);
});

test('each task of a batch gets its own submit span, parent of its own execution span', async () => {
  const submitted = await manager.request('POST', '/v1/tasks/batch', {
    tasks: [
      { task: 'example.echo', params: { n: 1 } },
      { task: 'example.sleep', params: { ms: 10 } },
    ],
  });
  assert.equal(submitted.status, 201);
  const ids = (submitted.body.tasks as { id: string }[]).map((t) => t.id);
  await Promise.all(ids.map((id) => taskFinished(manager, id)));
  const linked = await Promise.all(ids.map((id) => waitForSpans(id, 1)));
  assert.notEqual(linked[0]!.submit.spanId, linked[1]!.submit.spanId);
  for (const [i, { submit, execute }] of linked.entries()) {
    assert.equal(submit.attributes['jobbers.task.id'], ids[i]);
    assert.equal(execute[0]!.parentSpanId, submit.spanId);
    assert.equal(execute[0]!.traceId, submit.traceId);
  }
  assert.equal(linked[1]!.execute[0]!.attributes['jobbers.task.type'], 'example.sleep');
});

test('every attempt of a retried task is a child of the one submit span; the failed attempt records its exception', async () => {
  const submitted = await manager.request('POST', '/v1/tasks', {
    task: 'example.flaky',
    params: { failTimes: 1 },
    retries: 1,
  });
  const id = submitted.body.id as string;
  assert.equal((await taskFinished(manager, id)).state, 'completed');
  const { submit, execute } = await waitForSpans(id, 2);
  const byAttempt = execute.sort(
    (a, b) => Number(a.attributes['jobbers.attempt']) - Number(b.attributes['jobbers.attempt']),
  );
  assert.deepEqual(
    byAttempt.map((s) => s.attributes['jobbers.attempt']),
    [1, 2],
  );
  for (const span of byAttempt) {
    assert.equal(span.parentSpanId, submit.spanId);
    assert.equal(span.traceId, submit.traceId);
  }
  assert.equal(byAttempt[0]!.status.code, statusError);
  assert.match(byAttempt[0]!.status.message ?? '', /flaky failure on attempt 1/);
  assert.ok(byAttempt[0]!.events.some((e) => e.name === 'exception'));
  assert.notEqual(byAttempt[1]!.status.code, statusError);
});
