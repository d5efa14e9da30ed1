// The worker runtime: takes tasks of its role's queues from BullMQ within its capacity, runs them
// under their timeout and lease, and stops cleanly: on WORKER_TTL (recycle) or on a signal
// (each task's shutdown policy).
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import {
  AttemptWorkerRecorder,
  adjustAttemptsStarted,
  bullmqPrefix,
  countProcessError,
  createRedisConnection,
  GatedWorker,
  JobbersError,
  type JobPayload,
  type Logger,
  logConnectionOutages,
  MetricsBuffer,
  markYield,
  queueOfStorage,
  queuesForRole,
  type RoleMap,
  type RunningTask,
  readLockTokens,
  recordRoleActivity,
  removeWorkerRecord,
  requireSupportedRedis,
  roleRefreshMs,
  roleStaleMs,
  TaskClient,
  type TaskRegistry,
  UnadoptedJobError,
  unmarkYield,
  type WorkerConfig,
  Workflows,
  writeWorkerRecord,
} from '@jobbers/core';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { CapacityGate, QueueSlots } from './capacity.js';
import { WorkerProcessMetrics } from './process-metrics.js';
import { type FetchedJob, QueueFetcher } from './queue-fetcher.js';
import { ShutdownError, TaskAttempt } from './task-attempt.js';

export {
  LeaseLostError,
  ShutdownError,
  TaskRateLimitedError,
  TaskTimeoutError,
  TaskYieldedError,
} from './task-attempt.js';

export interface JobbersWorkerOptions {
  config: WorkerConfig;
  registry: TaskRegistry;
  roles: RoleMap;
  logger: Logger;
}

/** Why the worker stopped: it reached WORKER_TTL, or stop() was called (a signal). */
export type StopReason = 'ttl' | 'stop';

interface QueueConsumer {
  queue: string;
  bull: GatedWorker<JobPayload>;
  slots: QueueSlots;
  fetcher: QueueFetcher;
}

/** How long a stopping worker keeps retrying its last metrics flush while Redis refuses it. */
const finalFlushRetryMs = 10_000;

/** BZPOPMIN timeout (seconds) of an idle queue: bounds how long an idle fetch may block. */
const idleBlockSeconds = 1;

export class JobbersWorker {
  readonly queues: readonly string[];
  readonly metrics: WorkerProcessMetrics;
  /** Cluster-wide outcome metrics, flushed to Redis every metricsFlushMs and on stop. */
  readonly outcomes: MetricsBuffer;
  private readonly workflows: Workflows;
  readonly name: string;
  /** Resolves when the worker has stopped (every task settled, metrics flushed, Redis closed). */
  readonly stopped: Promise<StopReason>;
  private readonly connection: Redis;
  private readonly control: Redis;
  /** Which worker runs each attempt, written in batches on the control connection. */
  private readonly attemptWorkers: AttemptWorkerRecorder;
  private readonly gate: CapacityGate;
  private readonly consumers: QueueConsumer[] = [];
  /** Attempts in this process, each with the promise of its slot being freed or handed over. */
  private readonly attempts = new Map<TaskAttempt, Promise<void>>();
  private phase: 'new' | 'starting' | 'running' | 'draining' | 'closing' | 'stopped' = 'new';
  private stopReason: StopReason = 'stop';
  private signals = 0;
  private graceTimer: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private roleTimer: NodeJS.Timeout | undefined;
  private roleRecordedAt = 0;
  /** This process in the registry of live workers (GET /v1/workers). */
  private readonly registryId: string;
  private readonly startedAt = Date.now();
  private readonly registryTasks = new Map<TaskAttempt, RunningTask>();
  private registryTimer: NodeJS.Timeout | undefined;
  private registryChanged = true;
  private registryWrittenAt = 0;
  private resolveStopped!: (reason: StopReason) => void;

  constructor(private readonly options: JobbersWorkerOptions) {
    const { config } = options;
    this.queues = queuesForRole(options.roles, config.role);
    for (const queue of Object.keys(config.queueCapacity)) {
      if (!this.queues.includes(queue)) {
        throw new JobbersError(
          'CONFIG_INVALID',
          `WORKER_QUEUE_CAPACITY names queue "${queue}", which role "${config.role}" does not serve (it serves ${this.queues.join(', ')})`,
        );
      }
    }
    this.name = `${config.role}@${os.hostname()}:${process.pid}`;
    this.registryId = `${this.name}#${randomBytes(3).toString('hex')}`;
    this.metrics = new WorkerProcessMetrics(config.role, () => this.attempts.size);
    this.metrics.capacity.set({ role: config.role }, config.concurrentTasks);
    this.connection = createRedisConnection(config.redisUrl, {
      blocking: true,
      connectionName: `jobbers-worker:${this.name}`,
    });
    logConnectionOutages(this.connection, options.logger, 'jobs');
    // Metrics and readiness use a connection whose commands time out: a hung Redis shows as a failed
    // flush (counted, retried) and a not-ready worker instead of a silent wait.
    this.control = createRedisConnection(config.redisUrl, {
      connectionName: `jobbers-worker:${this.name}:control`,
      commandTimeoutMs: config.redisCommandTimeoutMs,
    });
    logConnectionOutages(this.control, options.logger, 'control');
    this.attemptWorkers = new AttemptWorkerRecorder(this.control, config.prefix, (error, queue) => {
      countProcessError('record-attempt-worker');
      options.logger.warn({ err: error, queue }, 'could not record which worker runs these attempts');
    });
    this.outcomes = new MetricsBuffer(this.control, config.prefix, {
      flushMs: config.metricsFlushMs,
      logger: options.logger,
    });
    // A workflow node's worker advances its workflow and submits the nodes it made ready.
    // On the control connection: the jobs connection waits in blocking fetches. A step that times
    // out leaves the node's job unsettled, so it runs again and the step is repeated.
    this.workflows = new Workflows(
      this.control,
      config.prefix,
      new TaskClient({ connection: this.control, prefix: config.prefix, registry: options.registry }),
    );
    this.gate = new CapacityGate(config.concurrentTasks, config.ttlTasks);
    this.stopped = new Promise((resolve) => {
      this.resolveStopped = resolve;
    });
  }

  get isRunning(): boolean {
    return this.phase === 'running';
  }

  /** Ready: running, and Redis answers a PING within the command timeout. */
  async isReady(): Promise<boolean> {
    if (!this.isRunning) return false;
    try {
      await this.control.ping();
      return true;
    } catch {
      return false;
    }
  }

  /** Tasks running in this process now. */
  get runningTasks(): number {
    return this.attempts.size;
  }

  async start(): Promise<void> {
    const { config, logger } = this.options;
    if (this.phase !== 'new') return;
    this.phase = 'starting';
    // A partitioned queue is consumed through every partition, which share the queue's capacity.
    const storage = this.queues.flatMap((logical) => {
      const slots = new QueueSlots(
        Math.min(config.queueCapacity[logical] ?? config.concurrentTasks, config.concurrentTasks),
      );
      return this.options.registry.storageQueues(logical).map((queue) => ({ queue, slots }));
    });
    for (const { queue, slots } of storage) {
      const accepting = () => this.phase === 'running';
      const bull = new GatedWorker<JobPayload>(
        queue,
        {
          connection: this.connection,
          prefix: bullmqPrefix(config.prefix, queue),
          name: this.name,
          lockDuration: config.leaseMs,
          stalledInterval: Math.max(500, Math.floor(config.leaseMs / 2)),
          // A lease that expires sends the job back to wait without using a retry, however often.
          maxStalledCount: Number.MAX_SAFE_INTEGER,
          drainDelay: idleBlockSeconds,
        },
        {
          // Activates no job once the worker stops taking work: a fetch waking during a drain takes nothing.
          mayActivate: () => accepting() && this.gate.isOpen,
          beforeActivate: () =>
            Date.now() - this.roleRecordedAt > roleStaleMs ? this.recordRole() : undefined,
        },
      );
      bull.on('error', (error) => logger.error({ err: error, queue }, 'queue worker error'));
      const fetcher = new QueueFetcher({
        queue,
        bull,
        gate: this.gate,
        slots,
        logger,
        start: (fetched) => this.run(consumer, fetched),
        giveBack: (fetched) => this.giveBackUnstarted(fetched),
        accepting,
      });
      const consumer: QueueConsumer = { queue, bull, slots, fetcher };
      this.consumers.push(consumer);
    }
    await Promise.all(this.consumers.map((c) => c.bull.waitUntilReady()));
    await requireSupportedRedis(this.connection);
    await Promise.all(this.consumers.map((c) => c.bull.startStalledCheckTimer()));
    await this.recordRole();
    this.roleTimer = setInterval(
      () =>
        void this.recordRole().catch((error) => {
          countProcessError('record-role');
          this.options.logger.warn(
            { err: error },
            'could not record this role for the exporter; fetch-next hand-overs pause until it is',
          );
        }),
      roleRefreshMs,
    );
    this.roleTimer.unref();
    this.outcomes.start();
    await this.writeRegistryRecord();
    // At most one write a second while the running tasks change, and one every 5 s regardless.
    this.registryTimer = setInterval(() => {
      if (this.registryChanged || Date.now() - this.registryWrittenAt >= 5000)
        void this.writeRegistryRecord();
    }, 1000);
    this.registryTimer.unref();
    this.leaseTimer = setInterval(
      () => void this.renewLeases(),
      Math.max(100, Math.floor(config.leaseMs / 3)),
    );
    this.phase = 'running';
    // Stop signals that came while starting apply now, before any task is taken.
    const pending = this.signals;
    this.signals = 0;
    for (let i = 0; i < pending; i++) void this.stop();
    if (pending > 0) return;
    for (const consumer of this.consumers) consumer.fetcher.start();
    logger.info(
      {
        role: config.role,
        queues: this.queues,
        concurrency: config.concurrentTasks,
        queueCapacity: Object.fromEntries(
          this.consumers.map((c) => [queueOfStorage(c.queue), c.slots.limit]),
        ),
        ttl: config.ttlTasks,
        leaseMs: config.leaseMs,
      },
      'worker started',
    );
  }

  /** Tells the lifecycle exporter this role serves its queues (it labels activations by role). */
  private async recordRole(): Promise<void> {
    const { config } = this.options;
    await recordRoleActivity(
      this.connection,
      config.prefix,
      this.queues.flatMap((queue) => this.options.registry.storageQueues(queue)),
      config.role,
    );
    this.roleRecordedAt = Date.now();
  }

  private async writeRegistryRecord(): Promise<void> {
    const { config, logger } = this.options;
    this.registryChanged = false;
    const now = Date.now();
    try {
      await writeWorkerRecord(this.control, config.prefix, {
        id: this.registryId,
        role: config.role,
        host: os.hostname(),
        pid: process.pid,
        queues: [...this.queues],
        concurrency: config.concurrentTasks,
        startedAt: this.startedAt,
        lastSeenAt: now,
        running: [...this.registryTasks.values()],
      });
      this.registryWrittenAt = now;
    } catch (error) {
      this.registryChanged = true;
      countProcessError('write-worker-record');
      logger.warn(
        { err: error },
        'could not write this worker to the registry of live workers; trying again',
      );
    }
  }

  private run(consumer: QueueConsumer, { job, token }: FetchedJob): void {
    const { config, registry, logger } = this.options;
    const attempt = new TaskAttempt({
      job,
      token,
      def: registry.find(job.name),
      leaseMs: config.leaseMs,
      prefix: config.prefix,
      connection: this.connection,
      logger,
      outcomes: this.outcomes,
      workflows: this.workflows,
      // Fetch-next activates past the activation gate: only while the role record is fresh.
      handOver: () =>
        this.phase === 'running' &&
        Date.now() - this.roleRecordedAt <= roleStaleMs &&
        this.gate.reserveHandOver(),
      // Recorded once the task runs: an activation its rate limit held back was no run.
      onStart: () =>
        this.attemptWorkers.record(consumer.queue, job.id!, {
          attempt: attempt.attempt,
          worker: this.registryId,
          startedAt: Date.now(),
        }),
    });
    this.attempts.set(
      attempt,
      attempt.settled.then(() => this.afterAttempt(consumer, attempt)),
    );
    const running: RunningTask = {
      taskId: job.id!,
      queue: consumer.queue,
      task: job.name,
      attempt: attempt.attempt,
      startedAt: Date.now(),
    };
    this.registryTasks.set(attempt, running);
    this.registryChanged = true;
    void attempt.run();
    if (this.gate.ttlReached) this.beginDrain('ttl');
    if (this.signals > 1) void attempt.giveBack(new ShutdownError());
    else if (this.signals === 1) this.applyPolicy(attempt);
  }

  /** Frees the attempt's slot, or passes it to the job BullMQ handed over with the attempt's finish. */
  private async afterAttempt(consumer: QueueConsumer, attempt: TaskAttempt): Promise<void> {
    this.registryTasks.delete(attempt);
    this.registryChanged = true;
    if (attempt.handOverRequested) {
      const next = await consumer.bull
        .adopt(attempt.handedOver, attempt.token)
        .catch((error: unknown) => this.unadopted(consumer, attempt.token, error));
      if (next && this.phase === 'running') {
        this.gate.confirmHandOver();
        this.attempts.delete(attempt);
        this.run(consumer, { job: next, token: attempt.token });
        return;
      }
      this.gate.cancelHandOver();
      if (next) await this.giveBackUnstarted({ job: next, token: attempt.token });
    }
    this.attempts.delete(attempt);
    consumer.slots.release();
    this.gate.release();
    this.afterSettled();
  }

  /**
   * BullMQ handed over a job that could not be taken up: it is read again from Redis so it can be
   * given back (as `yielded`); if even that fails, its lease expires and it runs again as `timed-out`.
   */
  private async unadopted(
    consumer: QueueConsumer,
    token: string,
    error: unknown,
  ): Promise<Job<JobPayload> | undefined> {
    const { logger } = this.options;
    const jobId = error instanceof UnadoptedJobError ? error.jobId : undefined;
    countProcessError('adopt-handed-over-job');
    logger.error({ err: error, taskId: jobId, queue: consumer.queue }, 'could not take up a handed-over job');
    if (!jobId) return undefined;
    try {
      const job = await consumer.bull.readJob(jobId);
      if (job) await this.giveBackUnstarted({ job, token });
    } catch (readError) {
      countProcessError('give-back-unadopted-job');
      logger.error(
        { err: readError, taskId: jobId, queue: consumer.queue },
        'could not give back a handed-over job: it runs again once its lease expires (counted timed-out)',
      );
    }
    return undefined;
  }

  /**
   * A job taken that will not run here (no free slot, or the worker began to stop): back to wait as
   * `yielded`. BullMQ counted the activation as a start; it is taken back, as the task never ran
   * (ctx.attempt counts runs).
   */
  private async giveBackUnstarted({ job, token }: FetchedJob): Promise<void> {
    const { prefix } = this.options.config;
    await adjustAttemptsStarted(this.connection, prefix, job.queueName, job.id!, -1);
    await markYield(this.connection, prefix, job.queueName, job.id!);
    try {
      await job.moveToWait(token);
    } catch (error) {
      countProcessError('give-back-unstarted');
      this.options.logger.warn(
        { err: error, taskId: job.id },
        'could not give back a job it could not run: it runs again once its lease expires',
      );
      await this.undoGiveBack(job);
    }
  }

  /** Takes back the yield mark and the attempt count of a give-back that did not happen. */
  private async undoGiveBack(job: Job<JobPayload>): Promise<void> {
    const { prefix } = this.options.config;
    try {
      await unmarkYield(this.connection, prefix, job.queueName, job.id!);
      await adjustAttemptsStarted(this.connection, prefix, job.queueName, job.id!, 1);
    } catch (error) {
      countProcessError('undo-give-back');
      this.options.logger.warn(
        { err: error, taskId: job.id },
        'could not undo a failed give-back: the task may count one attempt less, or its next return to wait as yielded',
      );
    }
  }

  /**
   * Renews the lease of every task that has not taken it over with heartbeats, and checks that the
   * tasks that have still hold theirs: a task whose lease is gone is told (its signal aborts).
   */
  private async renewLeases(): Promise<void> {
    const { leaseMs, prefix } = this.options.config;
    // A workflow node's step runs before its job is settled: its lease is kept like any running task's.
    const live = [...this.attempts.keys()].filter((a) => (!a.isSettling || a.isAdvancing) && !a.leaseLost);
    const silent = live.filter((a) => a.leaseMode === 'heartbeat' && !a.isAdvancing);
    try {
      if (silent.length > 0) {
        const locks = await readLockTokens(
          this.connection,
          prefix,
          silent.map((a) => ({ queue: a.queue, id: a.job.id! })),
        );
        silent.forEach((a, i) => {
          if (locks[i] !== a.token) a.loseLease();
        });
      }
      for (const consumer of this.consumers) {
        const due = live.filter(
          (a) => a.queue === consumer.queue && (a.leaseMode === 'auto' || a.isAdvancing),
        );
        if (due.length === 0) continue;
        const failed = await consumer.bull.extendJobLocks(
          due.map((a) => a.job.id!),
          due.map((a) => a.token),
          leaseMs,
        );
        const lost = new Set(failed);
        for (const attempt of due) if (lost.has(attempt.job.id!)) attempt.loseLease();
      }
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not renew leases; retrying');
    }
  }

  /**
   * First call (SIGTERM): stop taking work and apply each running task's shutdown policy —
   * `reenqueue` gives the job back, `fail` fails the attempt, `finish` runs on for up to
   * WORKER_SHUTDOWN_GRACE_MS. A second call, or the grace running out, gives back every task still
   * running, so nothing is left active. Resolves once the worker has stopped.
   */
  stop(): Promise<StopReason> {
    this.signals++;
    if (this.phase === 'new') {
      this.phase = 'stopped';
      this.resolveStopped('stop');
      return this.stopped;
    }
    if (this.phase === 'starting' || this.phase === 'closing' || this.phase === 'stopped')
      return this.stopped;
    if (this.signals === 1) {
      this.stopReason = 'stop';
      this.beginDrain('stop');
      for (const attempt of this.attempts.keys()) this.applyPolicy(attempt);
      this.graceTimer = setTimeout(
        () => this.giveBackAll('the shutdown grace ran out'),
        this.options.config.shutdownGraceMs,
      );
      this.graceTimer.unref();
    } else {
      this.giveBackAll('a second stop signal');
    }
    this.afterSettled();
    return this.stopped;
  }

  private applyPolicy(attempt: TaskAttempt): void {
    if (attempt.isSettling) return;
    const policy = attempt.definition?.shutdown ?? 'finish';
    if (policy === 'reenqueue') {
      attempt.log.info('stopping: giving the task back (shutdown policy reenqueue)');
      void attempt.giveBack(new ShutdownError());
    } else if (policy === 'fail') {
      attempt.log.info('stopping: failing the attempt (shutdown policy fail)');
      void attempt.failNow(new ShutdownError());
    } else {
      attempt.log.info({ graceMs: this.options.config.shutdownGraceMs }, 'stopping: letting the task finish');
    }
  }

  private giveBackAll(why: string): void {
    clearTimeout(this.graceTimer);
    const still = [...this.attempts.keys()].filter((a) => !a.isSettling);
    if (still.length > 0)
      this.options.logger.info({ tasks: still.length }, `${why}: giving back the tasks still running`);
    for (const attempt of still) void attempt.giveBack(new ShutdownError());
  }

  /** Stops taking work: fetch loops end, blocked fetches are interrupted. */
  private beginDrain(reason: StopReason): void {
    if (this.phase !== 'running') return;
    this.phase = 'draining';
    this.stopReason = reason;
    const { logger, config } = this.options;
    if (reason === 'ttl')
      logger.info(
        { ttl: config.ttlTasks },
        'WORKER_TTL reached: taking no more tasks, finishing the running ones',
      );
    this.gate.close();
    for (const consumer of this.consumers) {
      consumer.slots.wake();
      // Force: interrupts a BZPOPMIN in flight. Job moves use the shared connection, which stays open.
      void consumer.bull.close(true).catch((error) => this.closeFailed(consumer.queue, error));
    }
    this.afterSettled();
  }

  private closeFailed(queue: string, error: unknown): void {
    countProcessError('close-queue-worker');
    this.options.logger.warn({ err: error, queue }, 'could not close the queue worker cleanly');
  }

  private afterSettled(): void {
    if (this.phase !== 'draining' || this.attempts.size > 0) return;
    this.phase = 'closing';
    void this.close();
  }

  private async close(): Promise<void> {
    const { logger } = this.options;
    await Promise.all(this.consumers.map((c) => c.fetcher.done));
    // A fetch in flight when draining began may have started a task after all: wait for it too.
    while (this.attempts.size > 0) await Promise.all(this.attempts.values());
    clearTimeout(this.graceTimer);
    clearInterval(this.leaseTimer);
    clearInterval(this.roleTimer);
    clearInterval(this.registryTimer);
    await this.attemptWorkers.flush();
    await removeWorkerRecord(this.control, this.options.config.prefix, this.registryId).catch((error) => {
      countProcessError('remove-worker-record');
      logger.warn({ err: error }, 'could not remove this worker from the registry: it drops out within 15 s');
    });
    await Promise.all(
      this.consumers.map((c) => c.bull.close(true).catch((error) => this.closeFailed(c.queue, error))),
    );
    if (!(await this.outcomes.close(finalFlushRetryMs)))
      logger.error(
        { retriedForMs: finalFlushRetryMs },
        'could not write the last metrics to Redis: this process loses its unflushed counts',
      );
    await this.connection.quit().catch(() => this.connection.disconnect());
    await this.control.quit().catch(() => this.control.disconnect());
    this.phase = 'stopped';
    logger.info({ reason: this.stopReason, tasksTaken: this.gate.takenTasks }, 'worker stopped');
    this.resolveStopped(this.stopReason);
  }
}
