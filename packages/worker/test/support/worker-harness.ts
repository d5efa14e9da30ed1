// What the worker tests share: a private redis-server, a key prefix per test file, the fixture
// tasks module, real jobbers-worker processes, an in-process lifecycle exporter for the transition
// counters, and readers of task state and metrics.
import { fileURLToPath } from 'node:url';
import {
  createRedisConnection,
  LifecycleExporter,
  loadTasks,
  queueKey,
  type SubmitRequest,
  TaskClient,
  type TaskRegistry,
  type TaskView,
} from '@jobbers/core';
import type { Redis } from 'ioredis';
import { clusterSamples, metricValue, type Sample } from '../../../../test/support/metrics.js';
import { bins, type RunningProcess, startProcess } from '../../../../test/support/processes.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../../test/support/redis-server.js';
import { waitFor } from '../../../../test/support/wait.js';

export const fixtureTasks = fileURLToPath(new URL('../fixtures/tasks.mjs', import.meta.url));

/** Short enough for fast tests, long enough to tell a renewed lease from a lost one. */
export const testLeaseMs = 1500;

export interface DelayedAttempt {
  dueMs: number;
  /** The attempt's activation: the worker asked no earlier. */
  activeMs: number;
  /** The `delayed` event: the worker asked no later. */
  delayedMs: number;
}

export interface Harness {
  server: RedisServer;
  redis: Redis;
  prefix: string;
  registry: TaskRegistry;
  client: TaskClient;
  exporter: LifecycleExporter;
  workers: RunningProcess[];
  /** Starts jobbers-worker (with `args`) and waits until it has started (or, with --processes, its first child). */
  startWorker(env?: Record<string, string>, args?: string[]): Promise<RunningProcess>;
  submit(request: SubmitRequest): Promise<string>;
  task(id: string): Promise<TaskView>;
  /** The pid of the worker process that last took the task (from BullMQ's processedBy, `role@host:pid`). */
  takenBy(id: string): Promise<number | undefined>;
  waitForState(id: string, states: string[], timeoutMs?: number): Promise<TaskView>;
  /**
   * Each time the task was put back as delayed (a backoff or a yield with a delay), read from the
   * queue's event stream: the due time the worker asked for, and the window in which it asked,
   * from the attempt's `active` event to the `delayed` event (Redis and the worker share one clock).
   */
  delays(id: string, queue?: string): Promise<DelayedAttempt[]>;
  /** Removes a task that is not active (test cleanup, so later tests start from an empty queue). */
  discard(id: string): Promise<void>;
  /** Cluster-wide metrics once the exporter has applied every event so far. */
  samples(): Promise<Sample[]>;
  transitions(task: string, transition: string): Promise<number>;
  counter(name: string, labels: Record<string, string>): Promise<number>;
  /** For counters workers flush (every JOBBERS_METRICS_FLUSH_MS): waits until it reads `value`. */
  waitForCounter(name: string, labels: Record<string, string>, value: number): Promise<void>;
  /** SIGKILLs every worker a test left running (after a failed assertion), so the next test starts clean. */
  killWorkers(): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(label: string, tasksModule = fixtureTasks): Promise<Harness> {
  const server = await startRedisServer();
  const redis = createRedisConnection(server.url, { blocking: true });
  redis.on('error', () => {});
  const prefix = uniquePrefix(label);
  const registry = await loadTasks(tasksModule);
  const client = new TaskClient({ connection: redis, prefix, registry });
  const exporter = new LifecycleExporter({
    connection: redis,
    prefix,
    queues: registry.queues,
    roles: ['default'],
    blockMs: 50,
    reconcileMs: 1000,
  }).start();
  await exporter.waitUntilReady();
  const workers: RunningProcess[] = [];

  const harness: Harness = {
    server,
    redis,
    prefix,
    registry,
    client,
    exporter,
    workers,
    async startWorker(env = {}, args = []) {
      const worker = startProcess(bins.worker, args, {
        REDIS_URL: server.url,
        JOBBERS_PREFIX: prefix,
        JOBBERS_TASKS: tasksModule,
        WORKER_METRICS_PORT: '0',
        WORKER_LEASE_MS: String(testLeaseMs),
        JOBBERS_METRICS_FLUSH_MS: '100',
        LOG_LEVEL: 'info',
        ...env,
      });
      workers.push(worker);
      await worker.waitForOutput(/worker started/, 20_000);
      return worker;
    },
    async submit(request) {
      return (await client.submit(request)).id;
    },
    task: (id) => client.getTask(id),
    async takenBy(id) {
      const job = await client.findJob(id);
      const match = /:(\d+)$/.exec(job?.processedBy ?? '');
      return match ? Number(match[1]) : undefined;
    },
    async delays(id, queue = 'default') {
      const attempts: DelayedAttempt[] = [];
      let activeMs: number | undefined;
      for (const [eventId, fields] of await redis.xrange(`${queueKey(prefix, queue)}:events`, '-', '+')) {
        if (fields[3] !== id) continue;
        const ms = Number(eventId.split('-')[0]);
        if (fields[1] === 'active') activeMs = ms;
        else if (fields[1] === 'delayed' && activeMs !== undefined) {
          const dueMs = Number(fields[fields.indexOf('delay') + 1]);
          attempts.push({ dueMs, activeMs, delayedMs: ms });
        }
      }
      return attempts;
    },
    async discard(id) {
      await (await client.findJob(id))?.remove();
    },
    waitForState: (id, states, timeoutMs = 15_000) =>
      waitFor(
        async () => {
          const view = await client.getTask(id);
          return states.includes(view.state) ? view : undefined;
        },
        { timeoutMs, what: `task ${id} to be ${states.join(' or ')}` },
      ),
    async samples() {
      await exporter.waitUntilCaughtUp();
      return clusterSamples(redis, prefix, registry);
    },
    async transitions(task, transition) {
      return metricValue(await harness.samples(), 'jobbers_job_transitions_total', { task, transition });
    },
    async counter(name, labels) {
      return metricValue(await harness.samples(), name, labels);
    },
    async waitForCounter(name, labels, value) {
      let last = 0;
      await waitFor(
        async () => {
          last = await harness.counter(name, labels);
          return last === value;
        },
        { what: `${name} ${JSON.stringify(labels)} to read ${value}` },
      ).catch((error) => {
        throw new Error(`${(error as Error).message}; it reads ${last}`);
      });
    },
    async killWorkers() {
      await Promise.all(workers.splice(0).map((w) => w.stop()));
    },
    async close() {
      await harness.killWorkers();
      await exporter.stop();
      await client.close();
      redis.disconnect();
      await server.stop();
    },
  };
  return harness;
}

export { waitFor };
