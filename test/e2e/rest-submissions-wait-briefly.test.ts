// A bar, not a benchmark: under light load, a task submitted over REST reaches a worker about as
// soon as one added straight into the queue with BullMQ's queue.add, as jobbers_time_in_queue_seconds
// shows and as BullMQ's own stamps (processedOn - timestamp) show. Both kinds are submitted
// interleaved to the same queue and worker, so a loaded machine slows both alike; the margins are
// loose enough for a loaded 2-core CI box and catch a manager that holds built jobs for tens of ms.
// Figures: npm run bench -- --only latency.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { parseExposition } from '../support/metrics.js';
import { bins, type RunningProcess, startProcess } from '../support/processes.js';
import { freePort, type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

/** Per kind; 100 submissions a second in all. */
const tasksPerKind = 150;
const perSecond = 100;
// REST tasks are example.echo, queue.add tasks example.sleep: the task label tells them apart.
const restTask = 'example.echo';
const addedTask = 'example.sleep';

let redis: RedisServer;
let admin: Redis;
let queue: Queue;
let manager: RunningProcess;
let worker: RunningProcess;
let prefix: string;
let baseUrl: string;

before(async () => {
  redis = await startRedisServer();
  prefix = uniquePrefix('wait');
  admin = new Redis(redis.url, { maxRetriesPerRequest: null });
  queue = new Queue('default', { connection: admin, prefix });
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  const env = { REDIS_URL: redis.url, JOBBERS_PREFIX: prefix, JOBBERS_TASKS: '@jobbers/examples' };
  manager = startProcess(bins.manager, [], { ...env, MANAGER_PORT: String(port), LOG_LEVEL: 'warn' });
  worker = startProcess(bins.worker, [], { ...env, WORKER_METRICS_PORT: '0', WORKER_CONCURRENT_TASKS: '10' });
  await worker.waitForOutput(/worker started/);
  await waitFor(() => fetch(`${baseUrl}/readyz`).then((r) => r.ok), {
    timeoutMs: 20_000,
    what: 'manager ready',
  });
});

after(async () => {
  await worker?.stop();
  await manager?.stop();
  await queue?.close();
  admin?.disconnect();
  await redis?.stop();
});

async function submitRest(i: number): Promise<string> {
  const response = await fetch(`${baseUrl}/v1/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ task: restTask, params: { i } }),
  });
  assert.equal(response.status, 201);
  return ((await response.json()) as { id: string }).id;
}

/** REST and queue.add submissions taking turns at a fixed pace, not waiting for answers. */
async function submitInterleaved(): Promise<{ rest: string[]; added: string[] }> {
  const startedAt = performance.now();
  const rest: Promise<string>[] = [];
  const added: Promise<string>[] = [];
  for (let i = 0; i < 2 * tasksPerKind; i++) {
    const due = startedAt + (i * 1000) / perSecond;
    if (due > performance.now()) await new Promise((resolve) => setTimeout(resolve, due - performance.now()));
    if (i % 2 === 0) rest.push(submitRest(i));
    else added.push(queue.add(addedTask, { params: { ms: 0 } }).then((job) => job.id!));
  }
  return { rest: await Promise.all(rest), added: await Promise.all(added) };
}

/** processedOn - timestamp of each job, in ms, sorted. */
async function bullmqWaits(ids: string[]): Promise<number[]> {
  const pipeline = admin.pipeline();
  for (const id of ids) pipeline.hmget(`${prefix}:default:${id}`, 'timestamp', 'processedOn');
  const replies = (await pipeline.exec()) ?? [];
  return replies
    .map(([, reply]) => {
      const [timestamp, processedOn] = reply as [string, string];
      return Number(processedOn) - Number(timestamp);
    })
    .sort((a, b) => a - b);
}

const at = (sorted: number[], p: number) => sorted[Math.ceil((p / 100) * sorted.length) - 1]!;

/** From /metrics: how many activations of `task` were observed, and the share within 50 ms. */
async function timeInQueue(task: string): Promise<{ count: number; shareWithin50Ms: number }> {
  const samples = parseExposition(await (await fetch(`${baseUrl}/metrics`)).text()).filter(
    (s) => s.labels.task === task,
  );
  const sum = (name: string, le?: string) =>
    samples
      .filter((s) => s.name === name && (le === undefined || s.labels.le === le))
      .reduce((total, s) => total + s.value, 0);
  const count = sum('jobbers_time_in_queue_seconds_count');
  const within = sum('jobbers_time_in_queue_seconds_bucket', '0.05');
  return { count, shareWithin50Ms: count === 0 ? 0 : within / count };
}

test('REST submissions wait in queue about as briefly as queue.add, by the metric and by BullMQ', async () => {
  const ids = await submitInterleaved();
  const [rest, added] = await waitFor(
    async () => {
      const read = await Promise.all([timeInQueue(restTask), timeInQueue(addedTask)]);
      return read.every((r) => r.count >= tasksPerKind) ? read : undefined;
    },
    { timeoutMs: 30_000, what: 'every activation in jobbers_time_in_queue_seconds' },
  );
  const [restWaits, addedWaits] = await Promise.all([bullmqWaits(ids.rest), bullmqWaits(ids.added)]);
  const what =
    `processedOn - timestamp, REST p50 ${at(restWaits, 50)} p99 ${at(restWaits, 99)} ms, ` +
    `queue.add p50 ${at(addedWaits, 50)} p99 ${at(addedWaits, 99)} ms; jobbers_time_in_queue_seconds ` +
    `within 50 ms: REST ${(100 * rest.shareWithin50Ms).toFixed(0)}%, queue.add ` +
    `${(100 * added.shareWithin50Ms).toFixed(0)}%`;
  assert.ok(at(restWaits, 50) <= at(addedWaits, 50) + 20, what);
  assert.ok(at(restWaits, 99) <= 2 * at(addedWaits, 99) + 50, what);
  assert.ok(rest.shareWithin50Ms >= added.shareWithin50Ms - 0.15, what);
});
