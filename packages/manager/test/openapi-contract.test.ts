// The server holds to its OpenAPI document: requests generated from the served document's schemas
// (fast-check), valid ones and single-rule breaks of them, sent over HTTP to a real manager on a
// real Redis. No 5xx; every status is one the operation documents; every body matches the documented
// schema for its status; a valid request is never refused as invalid; an invalid one is a coded 4xx.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  loadTasks,
  maxTaskIdLength,
  type ScheduleInput,
  scheduleProblems,
  type TaskRegistry,
} from '@jobbers/core';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import fc from 'fast-check';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { type Schema, SchemaArbitraries } from './support/openapi-arbitraries.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const requestsPerRun = 400;

let redis: RedisServer;
let manager: TestManager;
let registry: TaskRegistry;

before(async () => {
  redis = await startRedisServer();
  registry = await loadTasks('@jobbers/examples');
  manager = await startTestManager({ redisUrl: redis.url, prefix: uniquePrefix('contract') });
});
after(async () => {
  await manager?.close();
  await redis?.stop();
});

interface Operation {
  id: string;
  method: string;
  path: string;
  /** One object schema per part of the request: path and query (as text) and body (as JSON). */
  input: { path: Schema; query: Schema; body?: Schema; bodyRequired: boolean };
  responses: Record<string, Schema | undefined>;
  /** The media types documented per status. */
  mediaTypes: Record<string, string[]>;
}

function operationsOf(document: Schema): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries<Schema>(document.paths)) {
    for (const [method, operation] of Object.entries<Schema>(item)) {
      const part = (where: string) => {
        const params = (operation.parameters ?? []).filter((p: Schema) => p.in === where);
        return {
          type: 'object',
          properties: Object.fromEntries(params.map((p: Schema) => [p.name, p.schema])),
          required: params.filter((p: Schema) => p.required).map((p: Schema) => p.name),
          additionalProperties: false,
        };
      };
      const responses = Object.fromEntries(
        Object.entries<Schema>(operation.responses).map(([status, r]) => [
          status,
          r.content?.['application/json']?.schema,
        ]),
      );
      const mediaTypes = Object.fromEntries(
        Object.entries<Schema>(operation.responses).map(([status, r]) => [
          status,
          Object.keys(r.content ?? {}),
        ]),
      );
      out.push({
        mediaTypes,
        id: operation.operationId,
        method: method.toUpperCase(),
        path,
        input: {
          path: part('path'),
          query: part('query'),
          body: operation.requestBody?.content?.['application/json']?.schema,
          bodyRequired: operation.requestBody?.required === true,
        },
        responses,
      });
    }
  }
  return out;
}

interface Call {
  operation: Operation;
  path: Record<string, unknown>;
  query: Record<string, unknown>;
  body?: unknown;
  /** The single rule this call breaks, if any. */
  broken?: string;
}

test('generated requests hold the server to its document', async () => {
  const document = (await manager.request('GET', '/docs/json')).body;
  const operations = operationsOf(document);
  const arbitraries = new SchemaArbitraries(document);

  const newAjv = (coerceTypes: boolean | 'array') => {
    const ajv = addFormats(
      new Ajv2020({ strict: false, coerceTypes, allErrors: false, validateSchema: false }),
    );
    // The document spells these out as patterns and enums; the format names are labels.
    for (const format of ['task-id', 'task-type', 'known-queue']) ajv.addFormat(format, true);
    ajv.addSchema(document, 'doc');
    return ajv;
  };
  const asJson = validatorOf(newAjv(false));
  // Path and query values arrive as text; a repeated query parameter (an array) may be given once,
  // as `id=x`: one item, as the server reads it.
  const asText = validatorOf(newAjv('array'));
  const isValidCall = (call: Call) =>
    meetsProseRules(call) &&
    asText(call.operation.input.path, textOf(call.path)).valid &&
    asText(call.operation.input.query, textOf(call.query)).valid &&
    (call.operation.input.body === undefined ||
      (call.body === undefined
        ? !call.operation.input.bodyRequired
        : asJson(call.operation.input.body, call.body).valid));

  // Known tasks, so reads, cancels and retries also meet existing ids.
  const knownIds: string[] = [];
  for (const ms of [1, 2, 3]) {
    const res = await manager.request('POST', '/v1/tasks', {
      task: 'example.sleep',
      params: { ms },
      delay: 60_000,
    });
    knownIds.push(res.body.id);
  }

  const callOf = (operation: Operation): fc.Arbitrary<Call> => {
    const { path, query, body } = operation.input;
    const idOrQueue = fc.record({ known: fc.boolean(), pick: fc.nat() });
    return fc
      .record({
        path: arbitraries.valid(path) as fc.Arbitrary<Record<string, unknown>>,
        query: arbitraries.valid(query) as fc.Arbitrary<Record<string, unknown>>,
        body: body ? arbitraries.valid(body) : fc.constant(undefined),
        existing: idOrQueue,
        breakIt: fc.boolean(),
        which: fc.nat(),
      })
      .map(({ path: pathValues, query: queryValues, body: bodyValue, existing, breakIt, which }) => {
        // A cursor is opaque: only one the API returned is valid, so generated ones are left out.
        const { cursor: _opaque, ...queryWithoutCursor } = queryValues;
        const call: Call = { operation, path: { ...pathValues }, query: queryWithoutCursor, body: bodyValue };
        // What a schema cannot say of a workflow, its description does: keys are unique and a node
        // depends only on other nodes, with no cycle. A generated one is made so: distinct keys,
        // and each node depends only on nodes before it.
        if (operation.id === 'submitWorkflow') call.body = wellFormedWorkflow(call.body);
        if (existing.known && 'id' in call.path) call.path.id = knownIds[existing.pick % knownIds.length];
        if (existing.known && 'queue' in call.path) call.path.queue = 'default';
        if (!breakIt) return call;
        // Path breaks that change the route (a missing or empty segment) are not this operation's.
        const breaks = [
          ...arbitraries
            .mutations(path, call.path)
            .filter(([what, value]) => !/missing|unknown|empty|wrong type/.test(what) && value !== undefined)
            .map(([what, value]) => ({
              ...call,
              path: value as Record<string, unknown>,
              broken: `path${what}`,
            })),
          // A query string is always an object, and OpenAPI cannot say a parameter is unknown.
          ...arbitraries
            .mutations(query, call.query)
            .filter(([what]) => what !== ' wrong type' && what !== ' unknown property')
            .map(([what, value]) => ({
              ...call,
              query: value as Record<string, unknown>,
              broken: `query${what}`,
            })),
          ...(body
            ? arbitraries
                .mutations(body, call.body)
                .map(([what, value]) => ({ ...call, body: value, broken: `body${what}` }))
            : []),
        ];
        return breaks.length > 0 ? breaks[which % breaks.length]! : call;
      })
      .filter((call) => Object.values(call.path).every((v) => v !== '.' && v !== '..'))
      .map((call) =>
        Object.assign(call, {
          [fc.toStringMethod]: () =>
            `${call.operation.id} ${call.broken ?? 'valid'} ${JSON.stringify({ path: call.path, query: call.query, body: call.body })}`,
        }),
      );
  };

  const stats = { sent: 0, valid: 0, invalid: 0, byStatus: {} as Record<string, number> };
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...operations).chain(callOf), async (call) => {
      const valid = isValidCall(call);
      const { status, contentType, body } = await send(manager.baseUrl, call);
      stats.sent++;
      stats[valid ? 'valid' : 'invalid']++;
      stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
      const what = `${call.operation.id} ${call.broken ?? 'valid'} -> ${status} ${String(JSON.stringify(body)).slice(0, 300)}`;
      assert.ok(status < 500, what);
      assert.ok(String(status) in call.operation.responses, `undocumented status: ${what}`);
      assert.ok(
        (call.operation.mediaTypes[String(status)] ?? []).some((type) => contentType.startsWith(type)),
        `undocumented media type ${contentType}: ${what}`,
      );
      const schema = call.operation.responses[String(status)];
      if (schema) {
        const checked = asJson(schema, body);
        assert.ok(checked.valid, `${what}: ${checked.errors}`);
      }
      if (valid) {
        // Existence and state are not the document's to say: a valid request may meet 404 or 409.
        assert.ok(status < 300 || status === 404 || status === 409, `valid request refused: ${what}`);
        if (status === 404) assert.ok(Object.keys(call.path).length > 0, what);
      } else {
        assert.ok(status >= 400 && status < 500, `invalid request accepted: ${what}`);
        assert.equal(typeof body?.error?.code, 'string', what);
      }
    }),
    // A failure prints its seed and path: FC_SEED and FC_PATH replay exactly that run.
    {
      numRuns: requestsPerRun,
      ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED), path: process.env.FC_PATH } : {}),
    },
  );
  process.stdout.write(`# contract: ${JSON.stringify(stats)}\n`);
  // A replayed run (FC_PATH) sends only the failing request.
  if (!process.env.FC_PATH)
    assert.ok(stats.valid > requestsPerRun / 4 && stats.invalid > requestsPerRun / 4, JSON.stringify(stats));
});

/**
 * What the document can state only in prose: `after` is earlier than `before` when both are given,
 * and a cursor is valid only as the API returned it (these calls send none that it did).
 */
function meetsProseRules(call: Call): boolean {
  if (call.query.cursor !== undefined) return false;
  const filter = { ...call.query, ...(typeof call.body === 'object' ? call.body : {}) } as Record<
    string,
    unknown
  >;
  const [after, before] = [Date.parse(String(filter.after)), Date.parse(String(filter.before))];
  if (!(Number.isNaN(after) || Number.isNaN(before) || after < before)) return false;
  if (call.operation.id === 'createSchedule' || call.operation.id === 'putSchedule')
    return meetsScheduleRules({ ...(call.body as object), ...call.path } as ScheduleInput);
  if (call.operation.id === 'submitWorkflow') return meetsWorkflowIdRule(call.body);
  // A batch whose tasks is no array is the document's to refuse: no prose rule applies to it.
  const submissions = call.operation.id === 'submitTasks' ? filter.tasks : [call.body];
  if (!Array.isArray(submissions)) return true;
  return call.operation.method !== 'POST' || submissions.every(meetsDedupRules);
}

/**
 * What the schedule descriptions say: cron or every, tz only with cron and a real zone, end after
 * start, and params valid for the task on a queue it allows (the example tasks run on default).
 */
function meetsScheduleRules(input: ScheduleInput): boolean {
  if (scheduleProblems(input).length > 0) return false;
  if (input.queue !== undefined && input.queue !== 'default') return false;
  return registry.find(input.task) !== undefined && registry.acceptsParams(input.task, input.params ?? {});
}

/** What WorkflowBody's id description says: each node's task id, `<id>.<key>`, is at most 128 characters. */
function meetsWorkflowIdRule(body: unknown): boolean {
  const { id, nodes } = (body ?? {}) as { id?: unknown; nodes?: unknown };
  if (typeof id !== 'string' || !Array.isArray(nodes)) return true;
  return nodes.every(
    (node) => typeof node?.key !== 'string' || id.length + 1 + node.key.length <= maxTaskIdLength,
  );
}

/**
 * What SubmitBody's descriptions say of dedup (the example tasks name no dedupKey param): dedup and
 * dedupWindow need a dedupKey; throttle and debounce need a window; debounce takes no delay.
 */
function meetsDedupRules(submission: unknown): boolean {
  if (typeof submission !== 'object' || submission === null) return true;
  const { dedupKey, dedup, dedupWindow, delay } = submission as Record<string, unknown>;
  if (dedupKey === undefined) return dedup === undefined && dedupWindow === undefined;
  if ((dedup === 'throttle' || dedup === 'debounce') && dedupWindow === undefined) return false;
  return !(dedup === 'debounce' && delay !== undefined);
}

/** Validates against a schema of the document, its local $refs read in the document. */
function validatorOf(ajv: Ajv2020) {
  const compiled = new WeakMap<Schema, ReturnType<Ajv2020['compile']>>();
  return (schema: Schema, value: unknown) => {
    let validate = compiled.get(schema);
    if (!validate) {
      validate = ajv.compile(JSON.parse(JSON.stringify(schema).replaceAll('"$ref":"#/', '"$ref":"doc#/')));
      compiled.set(schema, validate);
    }
    const valid = validate(value) as boolean;
    return { valid, errors: ajv.errorsText(validate.errors) };
  };
}

function textOf(values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(values).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  );
}

async function send(baseUrl: string, call: Call) {
  let path = call.operation.path;
  for (const [name, value] of Object.entries(textOf(call.path))) {
    path = path.replace(`{${name}}`, encodeURIComponent(String(value)));
  }
  const search = new URLSearchParams(textOf(call.query) as Record<string, string>).toString();
  const init: RequestInit = { method: call.operation.method };
  if (call.body !== undefined) {
    init.body = JSON.stringify(call.body);
    init.headers = { 'content-type': 'application/json' };
  }
  const response = await fetch(`${baseUrl}${path}${search ? `?${search}` : ''}`, init);
  const contentType = response.headers.get('content-type') ?? '';
  if (contentType.startsWith('text/event-stream')) {
    // A stream does not end: its opening is the answer.
    await response.body?.cancel();
    return { status: response.status, contentType, body: undefined };
  }
  const text = await response.text();
  return {
    status: response.status,
    contentType: response.headers.get('content-type') ?? '',
    body: JSON.parse(text),
  };
}

function wellFormedWorkflow(body: unknown): unknown {
  const workflow = body as { nodes?: { key?: unknown; dependsOn?: unknown }[] };
  if (!Array.isArray(workflow?.nodes)) return body;
  const keys = workflow.nodes.map((_, i) => `n${i}`);
  return {
    ...workflow,
    nodes: workflow.nodes.map((node, i) => ({
      ...node,
      key: keys[i],
      ...(Array.isArray(node.dependsOn)
        ? { dependsOn: keys.slice(0, i).slice(0, node.dependsOn.length) }
        : {}),
    })),
  };
}
