// The served OpenAPI document, read as third-party tools read it: it passes Redocly's recommended
// lint with no errors, names every operation and a server, types each task's params by its name,
// and lists every status a route can answer and none it cannot.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadTasks, type TaskRegistry } from '@jobbers/core';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';

let redis: RedisServer;
let open: TestManager;
let guarded: TestManager;
let registry: TaskRegistry;

before(async () => {
  redis = await startRedisServer();
  registry = await loadTasks('@jobbers/examples');
  open = await startTestManager({ redisUrl: redis.url, prefix: uniquePrefix('doc') });
  guarded = await startTestManager({ redisUrl: redis.url, prefix: uniquePrefix('doc'), apiKeys: ['k1'] });
});
after(async () => {
  await open?.close();
  await guarded?.close();
  await redis?.stop();
});

async function documentOf(manager: TestManager): Promise<any> {
  const res = await manager.request('GET', '/docs/json');
  assert.equal(res.status, 200);
  return res.body;
}

function operationsOf(document: any): [string, string, any][] {
  return Object.entries<any>(document.paths).flatMap(([path, item]) =>
    Object.entries<any>(item).map(
      ([method, operation]) => [method, path, operation] as [string, string, any],
    ),
  );
}

async function lintProblems(document: any) {
  const config = await createConfig({ extends: ['recommended'] });
  return lintFromString({ source: JSON.stringify(document), absoluteRef: '/docs/json', config });
}

describe('the OpenAPI document', () => {
  for (const which of ['without', 'with'] as const) {
    test(`passes Redocly's recommended rules with no errors, ${which} API keys`, async () => {
      const problems = await lintProblems(await documentOf(which === 'with' ? guarded : open));
      const errors = problems.filter((p) => p.severity === 'error');
      assert.deepEqual(
        errors.map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`),
        [],
      );
      // Warnings that are true of the API stay: no license is declared, and GET /v1/queues has no 4xx.
      const warnings = problems.filter((p) => p.severity === 'warn').map((p) => p.ruleId);
      assert.deepEqual(
        warnings.filter((rule) => !['info-license', 'operation-4xx-response'].includes(rule)),
        [],
      );
    });
  }

  test('names every operation once and has a server', async () => {
    const document = await documentOf(open);
    assert.ok(document.servers?.length > 0);
    const ids = operationsOf(document).map(([, , operation]) => operation.operationId);
    assert.deepEqual(ids.sort(), [
      'cancelTask',
      'cancelWorkflow',
      'createSchedule',
      'deleteSchedule',
      'getQueue',
      'getSchedule',
      'getStats',
      'getTask',
      'getWorkflow',
      'listQueues',
      'listSchedules',
      'listTasks',
      'listWorkers',
      'listWorkflows',
      'pauseQueue',
      'pauseSchedule',
      'putSchedule',
      'resumeQueue',
      'resumeSchedule',
      'retryIncidents',
      'retryTask',
      'retryWorkflow',
      'streamEvents',
      'submitTask',
      'submitTasks',
      'submitWorkflow',
    ]);
  });

  test("types each registered task's params by its name, single and batch", async () => {
    const document = await documentOf(open);
    const submission = document.components.schemas.Submission;
    assert.equal(submission.discriminator.propertyName, 'task');
    assert.deepEqual(Object.keys(submission.discriminator.mapping).sort(), [...registry.names].sort());
    for (const def of registry.definitions) {
      const schema = document.components.schemas[`Submit.${def.name}`];
      assert.deepEqual(schema.properties.task.enum, [def.name]);
      const { additionalProperties: _open, ...params } = schema.properties.params;
      const { additionalProperties: _declared, ...declared } = def.params;
      assert.deepEqual(params, declared);
      assert.equal(submission.discriminator.mapping[def.name], `#/components/schemas/Submit.${def.name}`);
    }
    assert.deepEqual(document.components.schemas['Submit.example.sleep'].required, ['task', 'params']);
    assert.deepEqual(document.components.schemas['Submit.example.echo'].required, ['task']);
    const body = (path: string) => document.paths[path].post.requestBody.content['application/json'].schema;
    assert.deepEqual(body('/v1/tasks'), { $ref: '#/components/schemas/Submission' });
    assert.deepEqual(body('/v1/tasks/batch').properties.tasks.items, {
      $ref: '#/components/schemas/Submission',
    });
  });

  test('states the limits and formats the server enforces', async () => {
    const document = await documentOf(open);
    const sleep = document.components.schemas['Submit.example.sleep'].properties;
    assert.equal(sleep.delay.maximum, 365 * 24 * 3600 * 1000);
    assert.equal(sleep.priority.maximum, 2_097_151);
    assert.equal(sleep.id.maxLength, 128);
    assert.ok(new RegExp(sleep.id.pattern).test('01ARZ3NDEKTSV4RRFFQ69G5FAV'));
    assert.ok(new RegExp(sleep.id.pattern).test('order-42'));
    for (const bad of ['42', 'meta', '-x', 'a b']) assert.ok(!new RegExp(sleep.id.pattern).test(bad), bad);
    const list = document.paths['/v1/tasks'].get.parameters;
    const param = (name: string) => list.find((p: any) => p.name === name);
    assert.equal(param('before').schema.format, 'date-time');
    assert.equal(param('after').schema.format, 'date-time');
    assert.equal(param('limit').required, false);
    assert.deepEqual(param('task').schema.enum, registry.names);
    const retryBody = document.paths['/v1/tasks/retry'].post.requestBody.content['application/json'].schema;
    assert.ok(!retryBody.required?.includes('limit'));
    assert.equal(document.paths['/v1/queues/{queue}'].get.parameters[0].schema.maxLength, 64);
    const view = document.paths['/v1/tasks/{id}'].get.responses['200'].content['application/json'].schema;
    assert.ok(view.properties.state.enum.includes('completed'));
    assert.equal(view.properties.createdAt.format, 'date-time');
  });

  test('lists the statuses a route can answer and none it cannot', async () => {
    const document = await documentOf(open);
    for (const [method, path, operation] of operationsOf(document)) {
      const statuses = Object.keys(operation.responses);
      if (method === 'get') {
        for (const never of ['409', '413', '415']) assert.ok(!statuses.includes(never), `${path} ${never}`);
      } else {
        for (const always of ['413', '415']) assert.ok(statuses.includes(always), `${path} ${always}`);
      }
      if (path.includes('{'))
        for (const s of ['400', '404', '414']) assert.ok(statuses.includes(s), `${path} ${s}`);
      assert.ok(statuses.includes('503'), `${path} 503`);
      assert.ok(!statuses.includes('401') && !statuses.includes('500'), `${path}`);
    }
    for (const [, path, operation] of operationsOf(await documentOf(guarded))) {
      assert.ok('401' in operation.responses && '403' in operation.responses, path);
      assert.deepEqual(operation.security ?? (await documentOf(guarded)).security, [{ bearer: [] }]);
    }
  });
});
