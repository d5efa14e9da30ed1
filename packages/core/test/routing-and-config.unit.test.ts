import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  defineTask,
  JobbersError,
  loadManagerConfig,
  loadTasks,
  loadWorkerConfig,
  parseRoles,
  queuesForRole,
  resolveQueue,
  TaskRegistry,
} from '@jobbers/core';

const resize = defineTask({
  name: 'img.resize',
  queue: 'images',
  queues: ['images-bulk'],
  params: {},
  run: () => 1,
});
const mail = defineTask({ name: 'mail.send', queue: 'mail', params: {}, run: () => 1 });
const registry = new TaskRegistry([resize, mail]);
const code = (c: string) => (e: unknown) => e instanceof JobbersError && e.code === c;

test('a task runs on its own queue unless the submission picks an allowed one', () => {
  assert.equal(resolveQueue(resize), 'images');
  assert.equal(resolveQueue(resize, 'images-bulk'), 'images-bulk');
  assert.throws(() => resolveQueue(resize, 'mail'), code('QUEUE_NOT_ALLOWED'));
});

test('without JOBBERS_ROLES the default role serves every queue', () => {
  const roles = parseRoles(undefined, registry);
  assert.deepEqual([...queuesForRole(roles, 'default')], ['images', 'images-bulk', 'mail']);
  assert.deepEqual([...queuesForRole(roles, 'mail')], ['mail']);
});

test('JOBBERS_ROLES maps roles to queues and rejects unknown queues and roles', () => {
  const roles = parseRoles('media=images,images-bulk; post=mail', registry);
  assert.deepEqual([...queuesForRole(roles, 'media')], ['images', 'images-bulk']);
  assert.throws(() => queuesForRole(roles, 'nobody'), code('UNKNOWN_ROLE'));
  assert.throws(() => parseRoles('media=videos', registry), /no task uses/);
  assert.throws(() => parseRoles('media', registry), /role=queue1,queue2/);
});

test('config names the variable that is wrong', () => {
  assert.throws(
    () => loadManagerConfig({ JOBBERS_TASKS: 'x', REDIS_URL: 'http://nope' }),
    /REDIS_URL "http:\/\/nope"/,
  );
  assert.throws(
    () => loadManagerConfig({ JOBBERS_TASKS: 'x', MANAGER_PORT: 'eighty' }),
    /MANAGER_PORT="eighty"/,
  );
  assert.throws(() => loadManagerConfig({}), /JOBBERS_TASKS is not set/);
  assert.throws(
    () => loadManagerConfig({ JOBBERS_TASKS: 'x', JOBBERS_REDIS_COMMAND_TIMEOUT_MS: '2s' }),
    /JOBBERS_REDIS_COMMAND_TIMEOUT_MS="2s" must be a whole number between 100 and 600000/,
  );
  assert.throws(
    () =>
      loadWorkerConfig({
        JOBBERS_TASKS: 'x',
        WORKER_CONCURRENT_TASKS: '0',
        WORKER_QUEUE_CAPACITY: 'default',
      }),
    (e: unknown) =>
      e instanceof JobbersError &&
      /WORKER_CONCURRENT_TASKS="0"/.test(e.message) &&
      /WORKER_QUEUE_CAPACITY/.test(e.message),
  );
});

test('config refuses a bad LOG_LEVEL, JOBBERS_EXPORTER or a JOBBERS_API_KEYS that names no key', () => {
  assert.throws(
    () => loadManagerConfig({ JOBBERS_TASKS: 'x', LOG_LEVEL: 'bogus' }),
    /LOG_LEVEL="bogus" must be one of fatal, error, warn, info, debug, trace, silent/,
  );
  assert.throws(() => loadWorkerConfig({ JOBBERS_TASKS: 'x', LOG_LEVEL: 'verbose' }), /LOG_LEVEL="verbose"/);
  assert.throws(
    () => loadManagerConfig({ JOBBERS_TASKS: 'x', JOBBERS_EXPORTER: 'of' }),
    /JOBBERS_EXPORTER="of" must be on or off/,
  );
  assert.throws(
    () => loadManagerConfig({ JOBBERS_TASKS: 'x', JOBBERS_API_KEYS: ' , ' }),
    /JOBBERS_API_KEYS is set but names no key/,
  );
  assert.deepEqual(loadManagerConfig({ JOBBERS_TASKS: 'x', JOBBERS_API_KEYS: '' }).apiKeys, []);
  assert.deepEqual(loadManagerConfig({ JOBBERS_TASKS: 'x', JOBBERS_API_KEYS: 'a, b,' }).apiKeys, ['a', 'b']);
  assert.equal(loadManagerConfig({ JOBBERS_TASKS: 'x', JOBBERS_EXPORTER: 'off' }).runExporter, false);
  assert.equal(loadManagerConfig({ JOBBERS_TASKS: 'x', LOG_LEVEL: 'debug' }).runExporter, true);
});

test('config defaults follow the design', () => {
  const manager = loadManagerConfig({ JOBBERS_TASKS: '@jobbers/examples' });
  assert.equal(manager.redisUrl, 'redis://127.0.0.1:6379');
  assert.equal(manager.prefix, 'jobbers');
  assert.equal(manager.port, 8080);
  assert.equal(manager.redisCommandTimeoutMs, 1500);
  assert.equal(
    loadManagerConfig({ JOBBERS_TASKS: 'x', JOBBERS_REDIS_COMMAND_TIMEOUT_MS: '4000' }).redisCommandTimeoutMs,
    4000,
  );
  const worker = loadWorkerConfig({
    JOBBERS_TASKS: '@jobbers/examples',
    WORKER_QUEUE_CAPACITY: 'default=8,images=2',
  });
  assert.equal(worker.concurrentTasks, 10);
  assert.equal(worker.metricsPort, 9464);
  assert.deepEqual(worker.queueCapacity, { default: 8, images: 2 });
});

test('loading tasks by package name finds the six examples', async () => {
  const examples = await loadTasks('@jobbers/examples');
  assert.deepEqual(examples.names.sort(), [
    'example.echo',
    'example.flaky',
    'example.heartbeat',
    'example.sleep',
    'example.square',
    'example.sum',
  ]);
  assert.deepEqual(examples.queues, ['default']);
});

test('a missing tasks module is a clear error', async () => {
  await assert.rejects(loadTasks('./does/not/exist.js'), code('TASKS_MODULE_INVALID'));
  await assert.rejects(
    loadTasks('@jobbers/not-a-package'),
    /cannot load tasks module "@jobbers\/not-a-package"/,
  );
});
