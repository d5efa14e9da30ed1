// The worker runtime: pulls tasks of its role's queues from BullMQ and runs them.
import os from 'node:os';
import {
  createRedisConnection,
  type JobPayload,
  jobKey,
  type Logger,
  MetricsBuffer,
  queuesForRole,
  type RoleMap,
  type TaskContext,
  type TaskDefinition,
  type TaskRegistry,
  type WorkerConfig,
} from '@jobbers/core';
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { attachOutcomeMetrics } from './outcome-metrics.js';
import { WorkerProcessMetrics } from './process-metrics.js';
import { traceExecution } from './tracing.js';

export class TaskTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`[timeout] task ran longer than its ${timeoutMs} ms timeout`);
    this.name = 'TaskTimeoutError';
  }
}

export interface JobbersWorkerOptions {
  config: WorkerConfig;
  registry: TaskRegistry;
  roles: RoleMap;
  logger: Logger;
}

export class JobbersWorker {
  readonly queues: readonly string[];
  readonly metrics: WorkerProcessMetrics;
  /** Cluster-wide outcome metrics, flushed to Redis every metricsFlushMs and on stop. */
  readonly outcomes: MetricsBuffer;
  readonly name: string;
  private readonly workers: Worker[] = [];
  private readonly connection: Redis;
  private readonly running = new Set<AbortController>();
  private started = false;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: JobbersWorkerOptions) {
    const { config } = options;
    this.queues = queuesForRole(options.roles, config.role);
    this.name = `${config.role}@${os.hostname()}:${process.pid}`;
    this.metrics = new WorkerProcessMetrics(config.role);
    this.metrics.capacity.set({ role: config.role }, config.concurrentTasks);
    this.metrics.runningTasks.set({ role: config.role }, 0);
    this.connection = createRedisConnection(config.redisUrl, {
      blocking: true,
      connectionName: `jobbers-worker:${this.name}`,
    });
    this.outcomes = new MetricsBuffer(this.connection, config.prefix, config.metricsFlushMs);
  }

  get isRunning(): boolean {
    return this.started && !this.stopping;
  }

  async start(): Promise<void> {
    const { config, logger } = this.options;
    for (const queue of this.queues) {
      const concurrency = Math.min(
        config.queueCapacity[queue] ?? config.concurrentTasks,
        config.concurrentTasks,
      );
      const worker = new Worker(queue, (job, token) => traceExecution(job, () => this.process(job, token)), {
        connection: this.connection,
        prefix: config.prefix,
        concurrency,
        name: this.name,
        lockDuration: config.leaseMs,
        stalledInterval: Math.max(1000, Math.floor(config.leaseMs / 2)),
        maxStalledCount: 1000,
        autorun: false,
      });
      worker.on('error', (error) => logger.error({ err: error, queue }, 'worker error'));
      attachOutcomeMetrics(worker, this.outcomes);
      this.workers.push(worker);
    }
    for (const worker of this.workers) {
      void worker.run().catch((error) => logger.error({ err: error }, 'worker loop stopped'));
    }
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
    this.outcomes.start();
    this.started = true;
    logger.info(
      { role: config.role, queues: this.queues, concurrency: config.concurrentTasks },
      'worker started',
    );
  }

  private async process(job: Job<JobPayload>, token?: string): Promise<unknown> {
    const { registry, logger, config } = this.options;
    const def = registry.find(job.name);
    if (!def)
      throw new UnrecoverableError(`[unknown-task] no task type "${job.name}" is registered in this worker`);
    const controller = new AbortController();
    this.running.add(controller);
    this.metrics.runningTasks.set({ role: config.role }, this.running.size);
    const log = logger.child({ taskId: job.id, task: job.name, queue: job.queueName });
    try {
      return await this.runWithTimeout(def, job, token, controller);
    } catch (error) {
      log.warn({ err: error, attempt: job.attemptsStarted }, 'task attempt failed');
      throw error;
    } finally {
      this.running.delete(controller);
      this.metrics.runningTasks.set({ role: config.role }, this.running.size);
    }
  }

  private async runWithTimeout(
    def: TaskDefinition,
    job: Job<JobPayload>,
    token: string | undefined,
    controller: AbortController,
  ) {
    const timeoutMs = job.data?.timeoutMs ?? def.timeout ?? 0;
    const ctx = this.context(job, token, controller.signal);
    const run = Promise.resolve().then(() => def.run(job.data?.params ?? {}, ctx));
    if (!timeoutMs) return run;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new TaskTimeoutError(timeoutMs);
        controller.abort(error);
        reject(error);
      }, timeoutMs);
    });
    try {
      return await Promise.race([run, timedOut]);
    } finally {
      clearTimeout(timer);
      run.catch(() => {});
    }
  }

  private context(job: Job<JobPayload>, token: string | undefined, signal: AbortSignal): TaskContext {
    const { config } = this.options;
    return {
      id: job.id!,
      task: job.name,
      queue: job.queueName,
      attempt: job.attemptsStarted || job.attemptsMade + 1,
      signal,
      heartbeat: async () => {
        if (token) await job.extendLock(token, config.leaseMs);
        await this.connection.hset(jobKey(config.prefix, job.queueName, job.id!), 'jbhb', Date.now());
      },
      yield: async () => {
        throw new Error('ctx.yield is not supported by this worker yet');
      },
    };
  }

  /** Stops taking work and waits for running tasks to finish. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all(this.workers.map((w) => w.close()));
      await this.outcomes
        .close()
        .catch((error) => this.options.logger.warn({ err: error }, 'metrics flush failed'));
      await this.connection.quit().catch(() => {});
    })();
    return this.stopping;
  }
}
