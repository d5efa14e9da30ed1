// The fault matrix's stack: a private redis-server, a real jobbers-manager (with the lifecycle
// exporter) and real jobbers-worker processes, a load of mixed example tasks, and the checks every
// fault ends with: each task completed or (as planned) failed, exactly once in the counters; the
// available gauge equal to Redis's truth; no process that stopped reporting its metrics.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import {
  countAvailableByTask,
  createRedisConnection,
  loadTasks,
  type SubmitRequest,
  TaskClient,
  type TaskRegistry,
} from '@jobbers/core';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { metricValue, parseExposition, type Sample } from '../../support/metrics.js';
import { bins, type RunningProcess, startProcess } from '../../support/processes.js';
import { freePort, type RedisServer, startRedisServer, uniquePrefix } from '../../support/redis-server.js';
import { waitFor } from '../../support/wait.js';

export const leaseMs = 3000;

export interface WorkerProcess {
  process: RunningProcess;
  metricsUrl: string;
}

export interface FaultStackOptions {
  label: string;
  /** Extra redis-server arguments (e.g. AOF). */
  redisArgs?: string[];
  workers?: number;
  /** The Redis URL a worker connects to (e.g. through a proxy); the server's by default. */
  workerRedisUrl?: (server: RedisServer, index: number) => string | Promise<string>;
}

/** What was submitted: every id, and the ids planned to fail (flaky beyond their retries). */
export interface Load {
  ids: string[];
  plannedFailures: Set<string>;
}

export class FaultStack {
  server!: RedisServer;
  redis!: Redis;
  registry!: TaskRegistry;
  client!: TaskClient;
  queue!: Queue;
  manager!: RunningProcess;
  managerUrl!: string;
  readonly workers: WorkerProcess[] = [];
  readonly prefix: string;
  private readonly dataDir: string;
  private readonly loads: Load[] = [];

  constructor(private readonly options: FaultStackOptions) {
    this.prefix = uniquePrefix(options.label);
    this.dataDir = mkdtempSync(path.join(tmpdir(), `jobbers-${options.label}-`));
  }

  async start(): Promise<void> {
    this.server = await startRedisServer(this.redisArgs());
    this.redis = createRedisConnection(this.server.url, { blocking: true });
    this.redis.on('error', () => {});
    this.registry = await loadTasks('@jobbers/examples');
    this.client = new TaskClient({ connection: this.redis, prefix: this.prefix, registry: this.registry });
    this.queue = new Queue('default', { connection: this.redis, prefix: this.prefix });
    const port = await freePort();
    this.managerUrl = `http://127.0.0.1:${port}`;
    this.manager = startProcess(bins.manager, [], {
      ...this.env(this.server.url),
      MANAGER_HOST: '127.0.0.1',
      MANAGER_PORT: String(port),
    });
    await waitFor(async () => (await this.status(`${this.managerUrl}/readyz`)) === 200, {
      timeoutMs: 30_000,
      what: 'the manager ready',
    });
    const count = this.options.workers ?? 2;
    for (let i = 0; i < count; i++) {
      const url = (await this.options.workerRedisUrl?.(this.server, i)) ?? this.server.url;
      const process = startProcess(bins.worker, [], {
        ...this.env(url),
        WORKER_METRICS_PORT: '0',
        WORKER_CONCURRENT_TASKS: '20',
        WORKER_LEASE_MS: String(leaseMs),
      });
      this.workers.push({ process, metricsUrl: '' });
    }
    for (const worker of this.workers) {
      await worker.process.waitForOutput(/health and metrics listening/);
      const port = /"metricsPort":(\d+)/.exec(worker.process.output())?.[1];
      worker.metricsUrl = `http://127.0.0.1:${port}`;
    }
  }

  private redisArgs(): string[] {
    return ['--dir', this.dataDir, ...(this.options.redisArgs ?? [])];
  }

  private env(redisUrl: string): Record<string, string> {
    return { REDIS_URL: redisUrl, JOBBERS_PREFIX: this.prefix, JOBBERS_TASKS: '@jobbers/examples' };
  }

  /** Stops Redis gracefully (SIGTERM: it writes its AOF) and returns once it has exited. */
  async stopRedisGracefully(): Promise<void> {
    const exited = new Promise((resolve) => this.server.process.once('exit', resolve));
    this.server.process.kill('SIGTERM');
    await exited;
  }

  /** Starts Redis again on the same port with the same data directory. */
  async restartRedis(): Promise<void> {
    this.server = await startRedisServer(this.redisArgs(), this.server.port);
  }

  /**
   * `count` mixed tasks: echo, short sleeps, flaky ones that succeed on their second attempt, and
   * one in twenty flaky beyond its single retry (planned to fail).
   */
  async submitMixed(count: number): Promise<Load> {
    const requests: SubmitRequest[] = [];
    const plannedFailureIndexes = new Set<number>();
    for (let i = 0; i < count; i++) {
      if (i % 20 === 19) {
        plannedFailureIndexes.add(i);
        requests.push({ task: 'example.flaky', params: { failTimes: 100 }, retries: 1 });
      } else if (i % 4 === 0) requests.push({ task: 'example.flaky', params: { failTimes: 1 } });
      else if (i % 4 === 1) requests.push({ task: 'example.sleep', params: { ms: 5 + (i % 30) } });
      else requests.push({ task: 'example.echo', params: { i } });
    }
    const load: Load = { ids: [], plannedFailures: new Set() };
    for (let start = 0; start < requests.length; start += 500) {
      const results = await this.client.submitBatch(requests.slice(start, start + 500));
      results.forEach((result, offset) => {
        load.ids.push(result.id);
        if (plannedFailureIndexes.has(start + offset)) load.plannedFailures.add(result.id);
      });
    }
    this.loads.push(load);
    return load;
  }

  /** The load every fault runs under: 2,000 mixed tasks, of which 400 finish before the fault. */
  async loadUntilFaultPoint(): Promise<Load> {
    const load = await this.submitMixed(2000);
    await waitFor(async () => (await this.finishedCount()) >= 400, {
      timeoutMs: 30_000,
      what: '400 tasks finished before the fault',
    });
    return load;
  }

  async finishedCount(): Promise<number> {
    const counts = await this.queue.getJobCounts('completed', 'failed');
    return (counts.completed ?? 0) + (counts.failed ?? 0);
  }

  async status(url: string): Promise<number> {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    await response.arrayBuffer();
    return response.status;
  }

  async samples(url: string): Promise<Sample[]> {
    const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
    assert.equal(response.status, 200, `${url}/metrics answers`);
    return parseExposition(await response.text());
  }

  managerSamples(): Promise<Sample[]> {
    return this.samples(this.managerUrl);
  }

  /** This process's jobbers_metrics_flush_failures_total. */
  async flushFailures(worker: WorkerProcess): Promise<number> {
    return metricValue(await this.samples(worker.metricsUrl), 'jobbers_metrics_flush_failures_total');
  }

  /**
   * The checks every fault ends with, after it has been undone: every task submitted finishes as
   * planned, the counters count each finish exactly once, every process still reports, and with the
   * workers stopped and a fresh backlog the available gauge equals the truth in Redis.
   */
  async verify(t: TestContext, drainTimeoutMs = 25_000): Promise<void> {
    const submitted = this.loads.flatMap((l) => l.ids);
    const plannedFailures = new Set(this.loads.flatMap((l) => [...l.plannedFailures]));
    await waitFor(async () => (await this.finishedCount()) === submitted.length, {
      timeoutMs: drainTimeoutMs,
      what: `all ${submitted.length} tasks finished`,
    });
    const failedIds = new Set(await this.redis.zrange(`${this.prefix}:default:failed`, 0, -1));
    assert.deepEqual(
      [...failedIds].filter((id) => !plannedFailures.has(id)),
      [],
      'no task failed that was planned to complete',
    );
    assert.equal(failedIds.size, plannedFailures.size, 'every task planned to fail failed');
    const completed = submitted.length - plannedFailures.size;
    assert.equal(await this.redis.zcard(`${this.prefix}:default:completed`), completed);

    // Every worker and the manager still answer /metrics, and their counts reached Redis exactly once.
    for (const worker of this.workers) await this.samples(worker.metricsUrl);
    let cluster: Sample[] = [];
    const processed = (status: string) => metricValue(cluster, 'jobbers_tasks_processed_total', { status });
    await waitFor(
      async () => {
        cluster = await this.managerSamples();
        return processed('completed') === completed && processed('failed') === plannedFailures.size;
      },
      { timeoutMs: 10_000, what: 'the processed counters to reach the finished tasks' },
    ).catch(() => undefined);
    assert.equal(metricValue(cluster, 'jobbers_cluster_metrics_up'), 1);
    assert.equal(processed('completed'), completed, 'tasks_processed{completed} counts each completion once');
    assert.equal(
      processed('failed'),
      plannedFailures.size,
      'tasks_processed{failed} counts each failure once',
    );
    const flushFailures = await Promise.all(this.workers.map((w) => this.flushFailures(w)));
    t.diagnostic(
      `${submitted.length} tasks: ${completed} completed, ${plannedFailures.size} failed as planned; ` +
        `timed-out ${metricValue(cluster, 'jobbers_tasks_timed_out_total')}, ` +
        `retried ${metricValue(cluster, 'jobbers_tasks_retried_total')}, ` +
        `completions rejected ${metricValue(cluster, 'jobbers_completions_rejected_total')}, ` +
        `worker flush failures ${flushFailures.join('/')}`,
    );

    // With the workers stopped, a backlog: the gauge must equal what Redis holds, per task.
    for (const worker of this.workers) worker.process.kill('SIGTERM');
    const exits = await Promise.all(this.workers.map((w) => w.process.exited));
    assert.deepEqual(
      exits.map((e) => e.code),
      this.workers.map(() => 0),
      'workers stop cleanly after the fault',
    );
    await this.client.submitBatch([
      ...Array.from({ length: 30 }, (_, i) => ({ task: 'example.echo', params: { backlog: i } })),
      ...Array.from({ length: 20 }, () => ({ task: 'example.sleep', params: { ms: 1 } })),
      ...Array.from({ length: 10 }, () => ({ task: 'example.flaky', params: { failTimes: 0 } })),
    ]);
    const truth = await countAvailableByTask(this.redis, this.prefix, 'default');
    assert.equal(truth.get('example.echo'), 30);
    const gauge = (samples: Sample[], task: string) =>
      metricValue(samples, 'jobbers_jobs_available', { queue: 'default', task });
    await waitFor(
      async () => {
        cluster = await this.managerSamples();
        return this.registry.names.every((task) => gauge(cluster, task) === (truth.get(task) ?? 0));
      },
      { timeoutMs: 10_000, what: 'the available gauge to equal the backlog' },
    ).catch(() => undefined);
    for (const task of this.registry.names) {
      assert.equal(
        gauge(cluster, task),
        truth.get(task) ?? 0,
        `jobbers_jobs_available{task="${task}"} equals the available jobs in Redis`,
      );
    }
  }

  async close(): Promise<void> {
    this.server?.process.kill('SIGCONT');
    await Promise.all(this.workers.map((w) => w.process.stop()));
    await this.manager?.stop();
    await this.queue?.close();
    await this.client?.close();
    this.redis?.disconnect();
    await this.server?.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
