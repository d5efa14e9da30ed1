// One test per lifecycle transition: drive BullMQ the way workers and the API do, and check the
// exporter counted the transition and moved the gauges.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, test } from 'node:test';
import { defineTask, LifecycleExporter, markYield, TaskRegistry } from '@jobbers/core';
import { Job, Queue, Worker } from 'bullmq';
import { clusterSamples, metricValue } from '../../../test/support/metrics.js';
import { uniquePrefix, useRedisServer } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';

const task = 'demo.job';
const registry = new TaskRegistry([defineTask({ name: task, queue: 'q', params: {}, run: () => null })]);
const fixture = useRedisServer({ blocking: true });
let prefix: string;
let queue: Queue;
let exporter: LifecycleExporter;
let manual: Worker;

beforeEach(async () => {
  prefix = uniquePrefix('tr');
  queue = new Queue('q', { connection: fixture.redis, prefix });
  manual = new Worker('q', null, {
    connection: fixture.redis,
    prefix,
    lockDuration: 400,
    stalledInterval: 100,
    name: 'default@test:1',
  });
  exporter = startExporter();
  await exporter.waitUntilReady();
});
afterEach(async () => {
  await exporter.stop();
  await manual.close(true);
  await queue.close();
});

function startExporter() {
  return new LifecycleExporter({
    connection: fixture.redis,
    prefix,
    queues: ['q'],
    roles: ['default'],
    blockMs: 50,
  }).start();
}

async function metrics() {
  await exporter.waitUntilCaughtUp();
  return clusterSamples(fixture.redis, prefix, registry);
}

async function count(transition: string) {
  return metricValue(await metrics(), 'jobbers_job_transitions_total', { queue: 'q', task, transition });
}

async function available() {
  return metricValue(await metrics(), 'jobbers_jobs_available', { queue: 'q', task });
}

async function activate(): Promise<{ job: Job; token: string }> {
  const token = randomUUID();
  const job = (await manual.getNextJob(token)) as Job;
  assert.ok(job, 'a job was activated');
  return { job, token };
}

test('created: a submission with no delay is available at once', async () => {
  await queue.add(task, {});
  assert.equal(await count('created'), 1);
  assert.equal(await available(), 1);
});

test('activated: taking a job removes it from available and records time in queue and role', async () => {
  await queue.add(task, {});
  await activate();
  const samples = await metrics();
  assert.equal(metricValue(samples, 'jobbers_job_transitions_total', { transition: 'activated' }), 1);
  assert.equal(metricValue(samples, 'jobbers_jobs_available', { task }), 0);
  assert.equal(metricValue(samples, 'jobbers_jobs_running', { task }), 1);
  assert.equal(metricValue(samples, 'jobbers_tasks_selected_total', { task, role: 'default' }), 1);
  assert.equal(metricValue(samples, 'jobbers_time_in_queue_seconds_count', { task, role: 'default' }), 1);
});

test('completed: a finished job leaves the running gauge', async () => {
  await queue.add(task, {});
  const { job, token } = await activate();
  await job.moveToCompleted('ok', token, false);
  const samples = await metrics();
  assert.equal(metricValue(samples, 'jobbers_job_transitions_total', { transition: 'completed' }), 1);
  assert.equal(metricValue(samples, 'jobbers_jobs_running', { task }), 0);
});

test('failed-with-retries: a failed attempt with retries left and no backoff is available again', async () => {
  await queue.add(task, {}, { attempts: 2 });
  const { job, token } = await activate();
  await job.moveToFailed(new Error('boom'), token, false);
  assert.equal(await count('failed-with-retries'), 1);
  assert.equal(await available(), 1);
});

test('failed-with-backoff then backoff-recurred: the job waits out its backoff, then is available', async () => {
  await queue.add(task, {}, { attempts: 2, backoff: { type: 'fixed', delay: 100 } });
  const { job, token } = await activate();
  await job.moveToFailed(new Error('boom'), token, false);
  assert.equal(await count('failed-with-backoff'), 1);
  assert.equal(await available(), 0);
  await waitFor(
    async () => {
      await manual.getNextJob(randomUUID(), { block: false });
      return (await count('backoff-recurred')) === 1;
    },
    { what: 'backoff-recurred', timeoutMs: 3000 },
  );
});

test('a submit delay that expires is backoff-recurred', async () => {
  await queue.add(task, {}, { delay: 50 });
  assert.equal(await available(), 0);
  await waitFor(
    async () => {
      await manual.getNextJob(randomUUID(), { block: false });
      return (await count('backoff-recurred')) === 1;
    },
    { what: 'the delayed job to be promoted' },
  );
});

test('timed-out: a job whose lease expired is available again without using a retry', async () => {
  await queue.add(task, {}, { attempts: 1 });
  const { job } = await activate();
  await fixture.redis.del(`${prefix}:q:${job.id}:lock`);
  await waitFor(
    async () => {
      await manual.moveStalledJobsToWait();
      return (await count('timed-out')) === 1;
    },
    { what: 'the stalled job to be moved back', timeoutMs: 5000 },
  );
  assert.equal(await available(), 1);
  assert.equal(await count('failed-with-retries'), 0);
  assert.equal(metricValue(await metrics(), 'jobbers_tasks_timed_out_total', { task }), 1);
});

test('yielded: a job given back by its worker is available again and counted as a yield', async () => {
  await queue.add(task, {});
  const { job, token } = await activate();
  await markYield(fixture.redis, prefix, 'q', job.id!);
  await job.moveToDelayed(Date.now(), token);
  assert.equal(await count('yielded'), 1);
  assert.equal(await count('failed-with-backoff'), 0);
});

test('incident-raised and failed: retries exhausted opens an incident', async () => {
  await queue.add(task, {}, { attempts: 1 });
  const { job, token } = await activate();
  await job.moveToFailed(new Error('[timeout] too slow'), token, false);
  const samples = await metrics();
  assert.equal(metricValue(samples, 'jobbers_job_transitions_total', { transition: 'incident-raised' }), 1);
  assert.equal(metricValue(samples, 'jobbers_job_transitions_total', { transition: 'failed' }), 1);
  assert.equal(metricValue(samples, 'jobbers_incidents', { task }), 1);
  assert.equal(
    metricValue(samples, 'jobbers_tasks_timed_out_total', { task }),
    0,
    'execution timeouts are counted by workers',
  );
});

test('incident-resolved: retrying an incident makes the job available and closes the incident', async () => {
  await queue.add(task, {}, { attempts: 1 });
  const { job, token } = await activate();
  await job.moveToFailed(new Error('boom'), token, false);
  await (await Job.fromId(queue, job.id!))!.retry('failed');
  const samples = await metrics();
  assert.equal(metricValue(samples, 'jobbers_job_transitions_total', { transition: 'incident-resolved' }), 1);
  assert.equal(metricValue(samples, 'jobbers_incidents', { task }), 0);
  assert.equal(metricValue(samples, 'jobbers_jobs_available', { task }), 1);
});

test('removed: cancelling an available job removes it from the gauge', async () => {
  const job = await queue.add(task, {});
  await queue.add(task, {});
  assert.equal(await available(), 2);
  await job.remove();
  assert.equal(await count('removed'), 1);
  assert.equal(await available(), 1);
});

test('yielded twice before the exporter applies either: both count as yields', async () => {
  await exporter.stop();
  await queue.add(task, {});
  for (let give = 0; give < 2; give++) {
    const { job, token } = await activate();
    await markYield(fixture.redis, prefix, 'q', job.id!);
    await job.moveToDelayed(Date.now(), token);
  }
  exporter = startExporter();
  assert.equal(await count('yielded'), 2);
  assert.equal(await count('failed-with-backoff'), 0);
});
