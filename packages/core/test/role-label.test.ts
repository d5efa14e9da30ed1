// The role label of activations: while one role serves a queue (workers record their role before
// activating), activations take it without a read per job; when several may, each job's `pb` tells.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, test } from 'node:test';
import {
  defineTask,
  LifecycleExporter,
  recordRoleActivity,
  roleActivityKey,
  TaskRegistry,
} from '@jobbers/core';
import { Queue, Worker } from 'bullmq';
import { clusterSamples, metricValue } from '../../../test/support/metrics.js';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';

const task = 'demo.job';
const registry = new TaskRegistry([defineTask({ name: task, queue: 'q', params: {}, run: () => null })]);
const fixture = useRedisServer({ blocking: true });
let prefix: string;
let queue: Queue;
let exporter: LifecycleExporter;
const workers: Worker[] = [];

beforeEach(async () => {
  prefix = uniquePrefix('role');
  queue = new Queue('q', { connection: fixture.redis, prefix });
  exporter = new LifecycleExporter({
    connection: fixture.redis,
    prefix,
    queues: ['q'],
    roles: ['default', 'other'],
    blockMs: 50,
  }).start();
  await exporter.waitUntilReady();
});
afterEach(async () => {
  await exporter.stop();
  for (const worker of workers.splice(0)) await worker.close(true);
  await queue.close();
});

/** Activates one job the way a worker named `name` (BullMQ's processedBy) would. */
async function activateAs(name: string) {
  const worker = new Worker('q', null, { connection: fixture.redis, prefix, name });
  workers.push(worker);
  await queue.add(task, {});
  assert.ok(await worker.getNextJob(randomUUID()), 'a job was activated');
}

async function selected(role: string) {
  await exporter.waitUntilCaughtUp();
  return metricValue(await clusterSamples(fixture.redis, prefix, registry), 'jobbers_tasks_selected_total', {
    task,
    role,
  });
}

test('while one role serves the queue, activations carry its label without reading who took the job', async () => {
  await recordRoleActivity(fixture.redis, prefix, ['q'], 'other');
  await activateAs('a-process-that-names-no-role');
  assert.equal(await selected('other'), 1);
  assert.equal(await selected('unknown'), 0);
});

test('when two roles serve the queue, each activation is labelled by the worker that took it', async () => {
  await recordRoleActivity(fixture.redis, prefix, ['q'], 'default');
  await recordRoleActivity(fixture.redis, prefix, ['q'], 'other');
  await activateAs('default@host:1');
  await activateAs('other@host:2');
  await activateAs('other@host:3');
  assert.equal(await selected('default'), 1);
  assert.equal(await selected('other'), 2);
});

test('a role last seen before the activity window labels nothing: the job tells who took it', async () => {
  const [seconds] = (await fixture.redis.time()) as [string | number, string | number];
  await fixture.redis.zadd(roleActivityKey(prefix, 'q'), Number(seconds) * 1000 - 10 * 60_000, 'other');
  await activateAs('default@host:1');
  assert.equal(await selected('default'), 1);
  assert.equal(await selected('other'), 0);
});
