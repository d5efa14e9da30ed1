// One attempt of one task in this worker: runs it under its timeout and lease, then settles the
// job exactly once — completed, failed, or given back unfinished (ctx.yield, shutdown, capacity).
import {
  acquireRateLimit,
  adjustAttemptsStarted,
  countProcessError,
  extendLeaseWithHeartbeat,
  isFinalFailure,
  isLostJobError,
  isRedisUnavailableError,
  type JobPayload,
  type Logger,
  type MetricsBuffer,
  markYield,
  maxLogLineChars,
  maxProgressBytes,
  maxTaskLogLines,
  moveToDelayedRateLimited,
  queueOfStorage,
  rateLimitOf,
  readJobFinish,
  type TaskContext,
  type TaskDefinition,
  unmarkYield,
  type Workflows,
} from '@jobbers/core';
import { type Job, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  recordCompleted,
  recordFailed,
  recordRejectedCompletion,
  recordScheduledRun,
  recordWorkflowFinished,
} from './outcome-metrics.js';
import { traceExecution } from './tracing.js';

export class TaskTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`[timeout] task ran longer than its ${timeoutMs} ms timeout`);
    this.name = 'TaskTimeoutError';
  }
}

export class LeaseLostError extends Error {
  constructor() {
    super('[lease-lost] this worker lost the task: its lease expired and the task runs elsewhere');
    this.name = 'LeaseLostError';
  }
}

export class ShutdownError extends Error {
  constructor() {
    super('[shutdown] the worker stopped while the task ran');
    this.name = 'ShutdownError';
  }
}

/** What ctx.yield() throws so the task's code unwinds; the job was already given back. */
export class TaskYieldedError extends Error {
  constructor() {
    super('the task yielded: its job was given back unfinished');
    this.name = 'TaskYieldedError';
  }
}

/** What ctx.rateLimited() throws so the task's code unwinds; the job was already given back. */
export class TaskRateLimitedError extends TaskYieldedError {
  constructor() {
    super();
    this.message = 'the task was rate-limited: its job waits and runs again without using a retry';
    this.name = 'TaskRateLimitedError';
  }
}

/** How long a task waits when its rate limit could not be checked (Redis did not answer). */
const uncheckedRateLimitWaitMs = 1000;

/**
 * `auto`: the worker renews the lease for as long as this process is alive (a task that never
 * heartbeats). `heartbeat`: from its first ctx.heartbeat() on, only heartbeats renew the lease, so a
 * task that stops heartbeating for WORKER_LEASE_MS is taken as frozen and recovered elsewhere.
 */
export type LeaseMode = 'auto' | 'heartbeat';

export type Settlement = 'completed' | 'failed' | 'given-back' | 'rejected';

export interface AttemptOptions {
  job: Job<JobPayload>;
  token: string;
  def: TaskDefinition | undefined;
  leaseMs: number;
  prefix: string;
  connection: Redis;
  logger: Logger;
  outcomes: MetricsBuffer;
  /** Advances a workflow when one of its nodes finishes. */
  workflows?: Workflows;
  /** Asked when the attempt finishes: true to have BullMQ activate the queue's next job in the same call. */
  handOver?: () => boolean;
  /** Called once the task's code is about to run (after its rate limit, if any, admitted it). */
  onStart?: () => void;
}

export class TaskAttempt {
  readonly job: Job<JobPayload>;
  readonly token: string;
  readonly controller = new AbortController();
  leaseMode: LeaseMode = 'auto';
  /** Whether the final move asked BullMQ for the next job (see AttemptOptions.handOver). */
  handOverRequested = false;
  /** What that move answered: BullMQ's raw next-job data, when a job came with it. */
  handedOver: unknown;
  private logger: Logger | undefined;
  private lost = false;
  private claimedBy: Settlement | undefined;
  private advancing = false;
  private parents: Record<string, unknown> = {};
  private resolveSettled!: (settlement: Settlement) => void;
  /** Resolves once the job is no longer this worker's: moved by this attempt or found lost. */
  readonly settled: Promise<Settlement>;

  constructor(private readonly options: AttemptOptions) {
    this.job = options.job;
    this.token = options.token;
    this.settled = new Promise((resolve) => {
      this.resolveSettled = resolve;
    });
  }

  get queue(): string {
    return this.job.queueName;
  }

  get log(): Logger {
    this.logger ??= this.options.logger.child({
      taskId: this.job.id,
      task: this.job.name,
      queue: this.job.queueName,
    });
    return this.logger;
  }

  get definition(): TaskDefinition | undefined {
    return this.options.def;
  }

  /** True once a final move is under way or done; later outcomes of the task's code are ignored. */
  get isSettling(): boolean {
    return this.claimedBy !== undefined;
  }

  /**
   * True while a workflow node's step runs before its job is settled. The step may wait (for a
   * claim a killed worker left on a node it submits, up to the claim's TTL): the worker keeps the
   * lease meanwhile, or the node would be taken back and run again, and wait again.
   */
  get isAdvancing(): boolean {
    return this.advancing;
  }

  get leaseLost(): boolean {
    return this.lost;
  }

  /** Runs the task's code, then settles the job with its outcome (unless it was settled meanwhile). */
  async run(): Promise<void> {
    const def = this.options.def;
    if (!def) {
      await this.settleOnce('failed', () =>
        this.fail(
          new UnrecoverableError(
            `[unknown-task] no task type "${this.job.name}" is registered in this worker`,
          ),
        ),
      );
      return;
    }
    if (def.rateLimit && !(await this.admitted(def))) return;
    // Given back (a stop signal) while its limit was checked: its place in the window is spent.
    if (this.isSettling) return;
    this.options.onStart?.();
    // After the rate limit: a held-back activation is no run (and starts again as attempt 1).
    recordScheduledRun(this.options.outcomes, this.job, this.attempt);
    let outcome: { ok: true; value: unknown } | { ok: false; error: Error };
    try {
      outcome = { ok: true, value: await traceExecution(this.job, () => this.execute(def)) };
    } catch (error) {
      outcome = { ok: false, error: error instanceof Error ? error : new Error(String(error)) };
    }
    if (outcome.ok) {
      await this.settleOnce('completed', () => this.complete(outcome.value));
    } else if (!(outcome.error instanceof TaskYieldedError)) {
      if (!this.isSettling)
        this.log.warn({ err: outcome.error, attempt: this.attempt }, 'task attempt failed');
      await this.settleOnce('failed', () => this.fail(outcome.error));
    }
  }

  /**
   * Whether the task's rate limit admits this start. When not, the job goes back to delayed until
   * its turn, marked rate-limited, its activation not counted as a run. A limit that cannot be
   * checked admits nothing: the job is given back the same way (or, if Redis is gone, its lease
   * expires and it is taken again), so the limit holds through Redis faults.
   */
  private async admitted(def: TaskDefinition): Promise<boolean> {
    let waitMs: number;
    try {
      waitMs = await acquireRateLimit(this.options.connection, this.options.prefix, {
        queue: def.queue,
        task: def.name,
        id: this.job.id!,
        params: this.job.data?.params,
        limit: rateLimitOf(def.rateLimit!),
      });
    } catch (error) {
      countProcessError('rate-limit-check');
      this.log.warn({ err: error }, "could not check the task's rate limit: it waits and tries again");
      waitMs = uncheckedRateLimitWaitMs;
    }
    if (waitMs <= 0) return true;
    await this.settleOnce('given-back', () => this.moveRateLimited(waitMs));
    return false;
  }

  get attempt(): number {
    return this.job.attemptsStarted || this.job.attemptsMade + 1;
  }

  private async execute(def: TaskDefinition): Promise<unknown> {
    const workflow = this.job.data?.workflow;
    if (workflow && this.options.workflows)
      this.parents = await this.options.workflows.parentResults(workflow);
    const timeoutMs = this.job.data?.timeoutMs ?? def.timeout ?? 0;
    const run = Promise.resolve().then(() => def.run(this.job.data?.params ?? {}, this.context()));
    if (!timeoutMs) return run;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new TaskTimeoutError(timeoutMs);
        this.controller.abort(error);
        reject(error);
      }, timeoutMs);
    });
    try {
      return await Promise.race([run, timedOut]);
    } finally {
      clearTimeout(timer);
      // The attempt has its outcome (the timeout); the task's own late failure is only worth a line.
      run.catch((error: unknown) =>
        this.log.debug({ err: error }, 'task code failed after its attempt had ended'),
      );
    }
  }

  private context(): TaskContext {
    const job = this.job;
    const controller = this.controller;
    return {
      id: job.id!,
      task: job.name,
      queue: queueOfStorage(job.queueName),
      attempt: this.attempt,
      parents: this.parents,
      // Node builds an AbortSignal on its first read, at a cost of several us: only for the tasks
      // that read it (abort() builds it too, so an aborted attempt's signal is always there).
      get signal() {
        return controller.signal;
      },
      heartbeat: () => this.heartbeat(),
      yield: (delayMs?: number) => this.yieldJob(delayMs),
      rateLimited: (retryAfterMs: number) => this.rateLimitedByUpstream(retryAfterMs),
      progress: (value) => this.reportProgress(value),
      log: (line) => this.appendLog(line),
    };
  }

  /** Ignored once the attempt is settling: the task's late reports belong to no attempt. */
  private async reportProgress(value: number | Record<string, unknown>): Promise<void> {
    const isNumber = typeof value === 'number' && Number.isFinite(value);
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    if (!isNumber && !isObject)
      throw new TypeError('ctx.progress(value): value must be a finite number or a plain object');
    if (isObject && Buffer.byteLength(JSON.stringify(value)) > maxProgressBytes)
      throw new RangeError(`ctx.progress(value): value is larger than ${maxProgressBytes} bytes as JSON`);
    if (this.isSettling || this.lost) return;
    await this.job.updateProgress(value);
  }

  private async appendLog(line: string): Promise<void> {
    if (typeof line !== 'string') throw new TypeError('ctx.log(line): line must be a string');
    if (this.isSettling || this.lost) return;
    // The bound on a task's lines lives here, where lines are written: submissions carry none.
    this.job.opts.keepLogs ??= maxTaskLogLines;
    await this.job.log(line.length > maxLogLineChars ? `${line.slice(0, maxLogLineChars)}…` : line);
  }

  private async heartbeat(): Promise<void> {
    if (this.isSettling) return;
    this.leaseMode = 'heartbeat';
    const { prefix, leaseMs, connection } = this.options;
    const held = await extendLeaseWithHeartbeat(connection, {
      prefix,
      queue: this.job.queueName,
      id: this.job.id!,
      token: this.token,
      leaseMs,
      nowMs: Date.now(),
    });
    if (!held) {
      this.loseLease();
      throw new LeaseLostError();
    }
  }

  private async yieldJob(delayMs = 0): Promise<never> {
    if (!Number.isInteger(delayMs) || delayMs < 0) {
      throw new RangeError(`ctx.yield(delayMs): delayMs must be a whole number of milliseconds >= 0`);
    }
    await this.settleOnce('given-back', () => this.moveBack(delayMs));
    throw new TaskYieldedError();
  }

  private async rateLimitedByUpstream(retryAfterMs: number): Promise<never> {
    if (!Number.isInteger(retryAfterMs) || retryAfterMs < 0) {
      throw new RangeError(
        'ctx.rateLimited(retryAfterMs): retryAfterMs must be a whole number of milliseconds >= 0',
      );
    }
    await this.settleOnce('given-back', () => this.moveRateLimited(retryAfterMs));
    throw new TaskRateLimitedError();
  }

  /** Gives the job back unfinished now (shutdown `reenqueue`, or `finish` past the grace). */
  giveBack(reason: Error): Promise<Settlement> {
    this.controller.abort(reason);
    return this.settleOnce('given-back', () => this.moveBack(0));
  }

  /** Fails this attempt now (shutdown `fail`): retries apply as for any failure. */
  failNow(error: Error): Promise<Settlement> {
    this.controller.abort(error);
    return this.settleOnce('failed', () => this.fail(error));
  }

  /** The lease renewal found the lock gone: the job runs elsewhere; tell the task to stop. */
  loseLease(): void {
    if (this.isSettling || this.lost) return;
    this.lost = true;
    this.log.warn('lease lost: the task was recovered by another worker; its outcome will be rejected');
    this.controller.abort(new LeaseLostError());
  }

  private async settleOnce(kind: Settlement, move: () => Promise<Settlement>): Promise<Settlement> {
    if (this.claimedBy) return this.settled;
    this.claimedBy = kind;
    let result: Settlement = 'rejected';
    try {
      result = await move();
    } catch (error) {
      this.log.error(
        { err: error },
        `could not settle the task (${kind}); its lease will expire and it will run again`,
      );
    } finally {
      this.resolveSettled(result);
    }
    return result;
  }

  private async complete(value: unknown): Promise<Settlement> {
    // Before the job is settled: a worker that dies in between runs the node again, and advancing
    // twice changes nothing twice.
    await this.advanceWorkflow('completed', value);
    try {
      const fetchNext = this.requestHandOver();
      this.handedOver = await untilRedisAnswers(
        () => this.job.moveToCompleted(value, this.token, fetchNext),
        this.options.leaseMs,
      );
    } catch (error) {
      if (!isLostJobError(error)) throw error;
      if (await this.ownMoveApplied('completed')) {
        this.log.info('completion applied before Redis went away; its reply was lost');
        recordCompleted(this.options.outcomes, this.job);
        return 'completed';
      }
      recordRejectedCompletion(this.options.outcomes, this.job);
      this.log.warn(
        { reason: (error as Error).message },
        'completion rejected: this worker had lost the task, which runs (or ran) elsewhere',
      );
      return 'rejected';
    }
    recordCompleted(this.options.outcomes, this.job);
    return 'completed';
  }

  private async fail(error: Error): Promise<Settlement> {
    if (isFinalFailure(this.job, error)) await this.advanceWorkflow('failed');
    try {
      const fetchNext = this.requestHandOver();
      this.handedOver = await untilRedisAnswers(
        () => this.job.moveToFailed(error, this.token, fetchNext),
        this.options.leaseMs,
      );
    } catch (moveError) {
      if (!isLostJobError(moveError)) throw moveError;
      if (await this.ownMoveApplied('failed')) {
        this.log.info('failure applied before Redis went away; its reply was lost');
        recordFailed(this.options.outcomes, this.job, error);
        return 'failed';
      }
      this.log.warn(
        { reason: (moveError as Error).message },
        'failure not recorded: this worker had lost the task, which runs (or ran) elsewhere',
      );
      return 'rejected';
    }
    recordFailed(this.options.outcomes, this.job, error);
    return 'failed';
  }

  private async advanceWorkflow(outcome: 'completed' | 'failed', value?: unknown): Promise<void> {
    const workflow = this.job.data?.workflow;
    if (!workflow || !this.options.workflows) return;
    this.advancing = true;
    let step: Awaited<ReturnType<Workflows['advance']>>;
    try {
      step = await this.options.workflows.advance(workflow, outcome, value);
    } finally {
      this.advancing = false;
    }
    if (!step) {
      this.log.warn({ workflow: workflow.id }, 'workflow node finished, but its workflow is gone');
      return;
    }
    if (step.submitted.length > 0)
      this.log.debug(
        { workflow: workflow.id, submitted: step.submitted.map((s) => s.id) },
        'workflow nodes submitted',
      );
    if (step.finished) recordWorkflowFinished(this.options.outcomes, step);
  }

  /**
   * Whether this attempt's own move was applied although its reply was lost (Redis restarted or the
   * connection dropped, and the move resent or retried was then refused as lost): the job still
   * carries this attempt's start count, and sits where this move put it.
   */
  private async ownMoveApplied(kind: 'completed' | 'failed'): Promise<boolean> {
    const { connection, prefix } = this.options;
    const job = this.job;
    try {
      const finish = await readJobFinish(connection, prefix, job.queueName, job.id!);
      if (finish.attemptsStarted !== job.attemptsStarted) return false;
      if (finish.attemptsMade !== job.attemptsMade + 1) return false;
      if (kind === 'completed' && !finish.completed) return false;
      if (finish.finishedOn) job.finishedOn = finish.finishedOn;
      return true;
    } catch (error) {
      countProcessError('check-own-move');
      this.log.warn({ err: error }, 'could not check whether a refused move had been applied');
      return false;
    }
  }

  private requestHandOver(): boolean {
    if (!this.handOverRequested) this.handOverRequested = this.options.handOver?.() ?? false;
    return this.handOverRequested;
  }

  /** Back to wait (or delayed) without using a retry; marked first so the exporter counts `yielded`. */
  private async moveBack(delayMs: number): Promise<Settlement> {
    const { connection, prefix } = this.options;
    const job = this.job;
    await markYield(connection, prefix, job.queueName, job.id!);
    try {
      await untilRedisAnswers(async () => {
        if (delayMs > 0) await job.moveToDelayed(Date.now() + delayMs, this.token);
        else await job.moveToWait(this.token);
      }, this.options.leaseMs);
    } catch (error) {
      await unmarkYield(connection, prefix, job.queueName, job.id!).catch((unmarkError) => {
        countProcessError('unmark-yield');
        this.log.warn(
          { err: unmarkError },
          'could not take back the yield mark of a give-back that failed: its next return to wait may count as yielded',
        );
      });
      if (!isLostJobError(error)) throw error;
      this.log.warn(
        { reason: (error as Error).message },
        'could not give the task back: this worker had lost it',
      );
      return 'rejected';
    }
    this.log.info({ delayMs }, 'task given back unfinished');
    return 'given-back';
  }

  /**
   * Back to delayed for waitMs, marked rate-limited, without using a retry; the activation is taken
   * back from the attempts started, so the next run has the same attempt number.
   */
  private async moveRateLimited(waitMs: number): Promise<Settlement> {
    const { connection, prefix } = this.options;
    const job = this.job;
    await adjustAttemptsStarted(connection, prefix, job.queueName, job.id!, -1);
    try {
      await untilRedisAnswers(
        () => moveToDelayedRateLimited(connection, prefix, job, this.token, waitMs),
        this.options.leaseMs,
      );
    } catch (error) {
      await adjustAttemptsStarted(connection, prefix, job.queueName, job.id!, 1).catch((undoError) => {
        countProcessError('undo-rate-limited-start');
        this.log.warn(
          { err: undoError },
          'could not restore the attempt count of a rate-limited move that failed',
        );
      });
      if (!isLostJobError(error)) throw error;
      this.log.warn(
        { reason: (error as Error).message },
        'could not hold back the task: this worker had lost it',
      );
      return 'rejected';
    }
    this.log.debug({ waitMs }, 'task rate-limited: waiting for its turn');
    return 'given-back';
  }
}

/** Retries a Redis call while Redis is unreachable, for up to withinMs (then the lease decides). */
async function untilRedisAnswers<T>(call: () => Promise<T>, withinMs: number): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (let pauseMs = 100; ; pauseMs = Math.min(pauseMs * 2, 2000)) {
    try {
      return await call();
    } catch (error) {
      if (!isRedisUnavailableError(error) || Date.now() + pauseMs > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }
}
