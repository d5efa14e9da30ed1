// Submitting and reading tasks: what the manager's routes call; usable from any code.
import { setTimeout as sleep } from 'node:timers/promises';
import { type Job, type JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { jobFromHash, jobHashField } from './bullmq/job-hash.js';
import { type CancelOutcome, TaskCanceller } from './cancellation.js';
import { isRedisUnavailableError, JobbersError } from './errors.js';
import { claimTtlMs, IdReservations, newClaimToken, workflowClaimToken } from './id-reservation.js';
import { newTaskId, normalizeTaskId } from './ids.js';
import { checkIncidentRetryLimit, retryIncident, retryIncidents } from './incidents.js';
import { bullmqPrefix, jobKey } from './keys.js';
import { countProcessError } from './metrics/process-health.js';
import { execPerNode, type RoutedCommand } from './redis.js';
import { PartitionRouter, resolveQueue } from './routing.js';
import type {
  CancelResult,
  IncidentRetrySummary,
  SubmitBody,
  SubmitResult,
  TaskPage,
  TaskState,
  TaskView,
} from './schemas.js';
import {
  backoffProblems,
  type DedupMode,
  dedupModeProblems,
  maxDedupKeyLength,
  maxRetries,
  maxTaskLogLines,
  maxTimerMs,
  type TaskDefinition,
  type TaskRegistry,
} from './task.js';
import {
  decodeCursor,
  defaultPageSize,
  encodeCursor,
  type FoundTask,
  listableStates,
  maxPageSize,
  resolveFilter,
  scanTasks,
  type TaskFilter,
  type TaskQuery,
} from './tasks-query.js';
import { traceSubmissions } from './tracing.js';
import { Turns } from './turns.js';
import { parseAttemptWorkers } from './workers.js';
import type { WorkflowNodeRef } from './workflows.js';

/** A submission: the body of POST /v1/tasks, and the submitter's W3C trace context. */
export type SubmitRequest = SubmitBody & {
  /** W3C trace context of the submitter. */
  traceparent?: string;
  /** Set for a workflow's node (never from a REST body): the worker advances the workflow. */
  workflow?: WorkflowNodeRef;
};

/** What a job's data holds: the params and what the worker needs beside BullMQ's options. */
export interface JobPayload {
  params: unknown;
  timeoutMs?: number;
  traceparent?: string;
  workflow?: WorkflowNodeRef;
}

export const maxDelayMs = 365 * 24 * 3600 * 1000;
/** BullMQ's highest priority number (2^21 - 1); 1 runs first. */
export const maxPriority = 2_097_151;
export const maxBatchSize = 1000;
/** A listed task's params or result stored larger than this is left out unless asked for. */
export const listedFieldMaxBytes = 16 * 1024;
/** How long a submission waits for a concurrent one of the same id to add its task. */
const claimWaitMs = claimTtlMs + 1000;
const claimPollMs = 5;
/** Batches adding at once per client; more wait their turn (see Turns). */
const batchesAtOnce = 4;

/**
 * A submission of one workflow's nodes claims their ids with the workflow's own token: a claim left
 * by a process that died while it submitted them is taken over by the next one advancing the
 * workflow, at once instead of once the claim expires. Undefined for any other submission.
 */
function workflowTokenOf(prepared: PreparedSubmission[]): string | undefined {
  const workflow = prepared[0]?.payload.workflow?.id;
  if (workflow !== undefined && prepared.every((p) => p.payload.workflow?.id === workflow))
    return workflowClaimToken(workflow);
  return undefined;
}

export interface PreparedSubmission {
  id: string;
  task: string;
  /** The queue the submission routed to, as clients name it. */
  queue: string;
  /** The queue that stores it: the queue itself, or the partition picked for it. */
  storageQueue: string;
  payload: JobPayload;
  options: JobsOptions;
}

export interface TaskClientOptions {
  connection: Redis;
  prefix: string;
  registry: TaskRegistry;
}

export class TaskClient {
  readonly registry: TaskRegistry;
  readonly prefix: string;
  private readonly connection: Redis;
  private readonly queues = new Map<string, Queue>();
  private readonly canceller: TaskCanceller;
  private readonly reservations: IdReservations;
  private readonly partitions: PartitionRouter;
  private readonly batchTurns = new Turns(batchesAtOnce);

  constructor(options: TaskClientOptions) {
    this.connection = options.connection;
    this.prefix = options.prefix;
    this.registry = options.registry;
    this.canceller = new TaskCanceller(options.connection, options.prefix);
    this.reservations = new IdReservations(
      options.connection,
      options.prefix,
      options.registry.storageQueues(),
    );
    this.partitions = new PartitionRouter(options.registry);
  }

  /** The BullMQ queue storing tasks: a queue, or one partition of a partitioned queue. */
  queue(name: string): Queue {
    if (!this.registry.queues.includes(name) && this.registry.queueOf(name) === name) {
      throw new JobbersError(
        'UNKNOWN_QUEUE',
        `unknown queue "${name}"; known queues: ${this.registry.queues.join(', ')}`,
      );
    }
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.connection, prefix: bullmqPrefix(this.prefix, name) });
      // BullMQ repeats here the errors of the shared connection, whose owner logs them: count only.
      queue.on('error', () => countProcessError('queue-connection'));
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** Validates everything about one submission; throws a JobbersError and touches no state on bad input. */
  prepare(request: SubmitRequest): PreparedSubmission {
    const def = this.registry.get(request.task);
    // Absent params are {}; anything sent, null included, is checked against the schema as it is.
    const params = request.params === undefined ? {} : request.params;
    this.registry.validateParams(def.name, params);
    const queue = resolveQueue(def, request.queue);
    const id = request.id === undefined ? newTaskId() : normalizeTaskId(request.id);
    const retries = request.retries ?? def.retries;
    const backoff = request.backoff ?? def.backoff;
    const timeoutMs = request.timeout ?? def.timeout;
    const problems: string[] = [];
    if (!Number.isInteger(retries) || retries < 0 || retries > maxRetries)
      problems.push(`retries must be 0..${maxRetries}`);
    if (
      request.delay !== undefined &&
      (!Number.isInteger(request.delay) || request.delay < 0 || request.delay > maxDelayMs)
    ) {
      problems.push(`delay must be whole milliseconds 0..${maxDelayMs}`);
    }
    if (
      request.priority !== undefined &&
      (!Number.isInteger(request.priority) || request.priority < 0 || request.priority > maxPriority)
    ) {
      problems.push(`priority must be 0..${maxPriority} (0 = none, 1 = highest)`);
    }
    if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > maxTimerMs))
      problems.push(`timeout must be whole milliseconds 0..${maxTimerMs}`);
    if (backoff) problems.push(...backoffProblems(backoff));
    const dedup = dedupOf(def, params, request, problems);
    if (problems.length > 0) {
      throw new JobbersError(
        'INVALID_OPTIONS',
        `invalid options for "${def.name}": ${problems.join('; ')}`,
        problems,
      );
    }
    const payload: JobPayload = { params };
    if (timeoutMs) payload.timeoutMs = timeoutMs;
    if (request.traceparent) payload.traceparent = request.traceparent;
    if (request.workflow) payload.workflow = request.workflow;
    const options: JobsOptions = {
      jobId: id,
      attempts: retries + 1,
      delay: request.delay || undefined,
      priority: request.priority || undefined,
      backoff: backoff ? { type: backoff.type, delay: backoff.delay, jitter: backoff.jitter } : undefined,
      removeOnComplete: false,
      removeOnFail: false,
    };
    if (dedup) {
      const id = `${def.name}:${dedup.key}`;
      if (dedup.mode === 'simple') options.deduplication = { id };
      else if (dedup.mode === 'throttle') options.deduplication = { id, ttl: dedup.windowMs };
      else {
        // Last one wins: each submission waits out the window delayed, and a later one replaces it there.
        options.deduplication = { id, ttl: dedup.windowMs, extend: true, replace: true };
        options.delay = dedup.windowMs;
      }
    }
    const storageQueue = this.partitions.storageQueue(def, queue, params);
    return { id, task: def.name, queue, storageQueue, payload, options };
  }

  async submit(request: SubmitRequest): Promise<SubmitResult> {
    const [result] = await this.submitBatch([request]);
    return result!;
  }

  /**
   * Validates every submission first: one bad entry rejects the whole batch and enqueues nothing.
   * A repeated id returns the existing task (created: false) and enqueues nothing.
   */
  async submitBatch(requests: SubmitRequest[]): Promise<SubmitResult[]> {
    if (requests.length > maxBatchSize) {
      throw new JobbersError(
        'VALIDATION_FAILED',
        `a batch holds at most ${maxBatchSize} tasks, got ${requests.length}`,
      );
    }
    const prepared: PreparedSubmission[] = [];
    const problems: { index: number; code: string; message: string; details?: unknown }[] = [];
    requests.forEach((request, index) => {
      try {
        prepared.push(this.prepare(request));
      } catch (error) {
        if (!(error instanceof JobbersError)) throw error;
        problems.push({ index, code: error.code, message: error.message, details: error.details });
      }
    });
    if (problems.length === 1 && requests.length === 1) {
      const only = problems[0]!;
      throw new JobbersError(only.code as never, only.message, only.details);
    }
    if (problems.length > 0) {
      throw new JobbersError(
        'VALIDATION_FAILED',
        `${problems.length} of ${requests.length} tasks are invalid; nothing was enqueued`,
        problems,
      );
    }
    const seen = new Set<string>();
    for (const p of prepared) {
      if (seen.has(p.id))
        throw new JobbersError('VALIDATION_FAILED', `task id "${p.id}" appears twice in the batch`);
      seen.add(p.id);
    }
    return traceSubmissions(prepared, () =>
      prepared.length === 1 ? this.enqueue(prepared) : this.batchTurns.run(() => this.enqueue(prepared)),
    );
  }

  /**
   * Exactly one submission of an id adds its task, across racers and managers: each claims its ids
   * first (id-reservation.ts), or, for one task where every key shares a slot, checks its id and
   * adds it in one script. Conflicts are found before anything is added, so a batch with one
   * stays all-or-nothing; ids claimed by a concurrent submission of the same type are awaited.
   */
  private async enqueue(prepared: PreparedSubmission[]): Promise<SubmitResult[]> {
    if (prepared.length === 1 && this.reservations.addsUnclaimed)
      return [await this.enqueueOne(prepared[0]!)];
    const token = workflowTokenOf(prepared) ?? newClaimToken();
    const claims = await this.reservations.claim(prepared, token);
    const results: SubmitResult[] = new Array(prepared.length);
    const mine = prepared.filter((_, index) => claims[index]!.outcome === 'reserved');
    try {
      for (const [index, p] of prepared.entries()) {
        const claim = claims[index]!;
        if (claim.outcome === 'existing') results[index] = await this.existingResult(p, claim.queue);
        if (claim.outcome === 'pending' && claim.task !== p.task) throw idConflict(p.id, claim.task);
      }
    } catch (error) {
      await this.reservations.release(mine, token);
      throw error;
    }
    const answered = await this.addClaimed(mine, token);
    const kept = new Map(mine.map((p, i) => [p, answered[i]!]));
    for (const [index, p] of prepared.entries()) {
      if (results[index]) continue;
      const keptId = kept.get(p);
      if (keptId === undefined) results[index] = await this.awaitOther(p);
      else results[index] = keptId === p.id ? createdResult(p) : await this.deduplicatedResult(p, keptId);
    }
    return results;
  }

  /** One submission, where the id check and the add are one script (no claim to make and drop). */
  private async enqueueOne(p: PreparedSubmission): Promise<SubmitResult> {
    const added = await this.reservations
      .addUnlessTaken(
        { queue: this.queue(p.storageQueue), id: p.id, task: p.task, data: p.payload, opts: p.options },
        workflowTokenOf([p]),
      )
      .catch((error: unknown) => {
        if (!isRedisUnavailableError(error)) throw error;
        // The script may have reached Redis, which then runs it whenever it answers again: the
        // answer names the id, so that resubmitting with it finds the task instead of adding twice.
        throw new JobbersError(
          'REDIS_UNAVAILABLE',
          `Redis did not answer; task "${p.id}" may still be added when it does: resubmit with this id to find out`,
          { id: p.id },
        );
      });
    if (added.outcome === 'existing') return this.existingResult(p, added.queue);
    if (added.outcome === 'pending') {
      if (added.task !== p.task) throw idConflict(p.id, added.task);
      return this.awaitOther(p);
    }
    return added.id === p.id ? createdResult(p) : this.deduplicatedResult(p, added.id);
  }

  /** The submission was dropped by deduplication: the task kept in its place. */
  private async deduplicatedResult(p: PreparedSubmission, keptId: string): Promise<SubmitResult> {
    const state = (await this.queue(p.storageQueue).getJobState(keptId)) as TaskState;
    return { id: keptId, task: p.task, queue: p.queue, state, created: false, deduplicated: true };
  }

  private addClaimed(prepared: PreparedSubmission[], token: string): Promise<string[]> {
    return this.reservations.addAndRelease(
      prepared.map((p) => ({
        queue: this.queue(p.storageQueue),
        id: p.id,
        task: p.task,
        data: p.payload,
        opts: p.options,
      })),
      token,
    );
  }

  /** The id is claimed by a concurrent submission of the same type: its task, once added. */
  private async awaitOther(p: PreparedSubmission): Promise<SubmitResult> {
    const deadline = Date.now() + claimWaitMs;
    while (Date.now() < deadline) {
      const token = newClaimToken();
      const [claim] = await this.reservations.claim([p], token);
      if (claim!.outcome === 'existing') return this.existingResult(p, claim!.queue);
      if (claim!.outcome === 'pending' && claim!.task !== p.task) throw idConflict(p.id, claim!.task);
      if (claim!.outcome === 'reserved') {
        // The other submission gave up without adding: this one adds the task.
        const [keptId] = await this.addClaimed([p], token);
        return keptId === p.id ? createdResult(p) : this.deduplicatedResult(p, keptId!);
      }
      await sleep(claimPollMs);
    }
    throw new JobbersError(
      'TASK_STATE_CONFLICT',
      `task id "${p.id}" is being submitted by another request that has not finished; try again`,
    );
  }

  private async existingResult(p: PreparedSubmission, queueName: string): Promise<SubmitResult> {
    const job = await this.queue(queueName).getJob(p.id);
    if (!job)
      throw new JobbersError(
        'TASK_STATE_CONFLICT',
        `task "${p.id}" vanished while being resubmitted; try again`,
      );
    if (job.name !== p.task) throw idConflict(p.id, job.name);
    return {
      id: p.id,
      task: job.name,
      queue: this.registry.queueOf(queueName),
      state: (await job.getState()) as TaskState,
      created: false,
    };
  }

  /** For each id, the queue holding a task with that id, if any. */
  async findQueues(ids: string[]): Promise<(string | undefined)[]> {
    const queues = this.registry.storageQueues();
    if (ids.length === 0) return [];
    const checks: RoutedCommand[] = [];
    for (const id of ids) {
      for (const q of queues) {
        const key = jobKey(this.prefix, q, id);
        checks.push({ key, add: (p) => p.exists(key) });
      }
    }
    const replies = await execPerNode(this.connection, checks);
    return ids.map((_, i) => queues.find((_q, j) => replies[i * queues.length + j] === 1));
  }

  async findJob(id: string): Promise<Job | undefined> {
    const normalized = normalizeTaskId(id);
    const [queueName] = await this.findQueues([normalized]);
    if (!queueName) return undefined;
    return (await this.queue(queueName).getJob(normalized)) ?? undefined;
  }

  async getTask(id: string): Promise<TaskView> {
    const normalized = normalizeTaskId(id);
    const [queueName] = await this.findQueues([normalized]);
    const queue = queueName ? this.queue(queueName) : undefined;
    // The state is read before the job hash: a task seen as completed always shows its result.
    const state = queue ? ((await queue.getJobState(normalized)) as TaskState) : undefined;
    const job = queue ? await queue.getJob(normalized) : undefined;
    if (!job || state === 'unknown') throw new JobbersError('TASK_NOT_FOUND', `no task with id "${id}"`);
    const [[heartbeat, attemptWorkers, progress], logs] = await Promise.all([
      this.connection.hmget(
        jobKey(this.prefix, job.queueName, job.id!),
        jobHashField.lastHeartbeat,
        jobHashField.attemptWorkers,
        jobHashField.progress,
      ),
      queue!.getJobLogs(normalized, 0, maxTaskLogLines - 1),
    ]);
    const view = await this.view(job, state, heartbeat ?? '');
    if (progress !== null && progress !== undefined) view.progress = parseProgress(progress);
    if (logs.logs.length > 0) view.logs = logs.logs;
    view.attemptsBy = parseAttemptWorkers(attemptWorkers).map((a) => ({
      attempt: a.attempt,
      worker: a.worker,
      startedAt: new Date(a.startedAt).toISOString(),
    }));
    return view;
  }

  /** `heartbeat`: the job hash's jbhb field when the caller already read it. */
  async view(job: Job, state?: TaskState, heartbeat?: string | null): Promise<TaskView> {
    const payload = (job.data ?? {}) as JobPayload;
    heartbeat ??= await this.connection.hget(
      jobKey(this.prefix, job.queueName, job.id!),
      jobHashField.lastHeartbeat,
    );
    const resolvedState = state ?? ((await job.getState()) as TaskState);
    const view: TaskView = {
      id: job.id!,
      task: job.name,
      queue: this.registry.queueOf(job.queueName),
      state: resolvedState,
      params: payload.params,
      attempts: job.attemptsStarted ?? job.attemptsMade,
      retries: Math.max(0, (job.opts.attempts ?? 1) - 1),
      createdAt: new Date(job.timestamp).toISOString(),
    };
    if (job.processedOn) view.startedAt = new Date(job.processedOn).toISOString();
    if (job.finishedOn) view.finishedAt = new Date(job.finishedOn).toISOString();
    if (heartbeat) view.lastHeartbeatAt = new Date(Number(heartbeat)).toISOString();
    if (resolvedState === 'completed') view.result = job.returnvalue;
    if (job.failedReason) {
      view.error = { message: job.failedReason, stack: job.stacktrace?.length ? job.stacktrace : undefined };
      const reason = /^\[(\w+)\]/.exec(job.failedReason)?.[1];
      if (reason) view.error.reason = reason;
    }
    const traceId = payload.traceparent?.split('-')[1];
    if (traceId) view.traceId = traceId;
    if (job.delay) view.delay = job.delay;
    if (job.priority) view.priority = job.priority;
    return view;
  }

  /**
   * A page of tasks matching the query (see tasks-query.ts for order and bounds). Params and results
   * stored larger than listedFieldMaxBytes are left out (named in `omitted`) unless `full` is set.
   */
  async listTasks(query: TaskQuery, options: { full?: boolean } = {}): Promise<TaskPage> {
    const filter = resolveFilter(this.registry, query, query.state ? [query.state] : listableStates);
    const limit = query.limit ?? defaultPageSize;
    if (!Number.isInteger(limit) || limit < 1 || limit > maxPageSize)
      throw new JobbersError('INVALID_FILTER', `limit must be 1..${maxPageSize}, got ${query.limit}`);
    const from = query.cursor === undefined ? undefined : decodeCursor(filter, query.cursor);
    const { found, next } = await scanTasks(this.connection, this.prefix, filter, from, limit);
    const tasks = await this.viewsOf(found, options.full ? Number.POSITIVE_INFINITY : listedFieldMaxBytes);
    return next ? { tasks, nextCursor: encodeCursor(filter, next) } : { tasks };
  }

  /** Views of the tasks found, in order, read in one pipeline; tasks removed since are left out. */
  private async viewsOf(found: FoundTask[], fieldMaxBytes: number): Promise<TaskView[]> {
    if (found.length === 0) return [];
    const replies = await execPerNode(
      this.connection,
      found.map(({ queue, id }) => {
        const key = jobKey(this.prefix, queue, id);
        return { key, add: (p) => p.hgetall(key) };
      }),
    );
    const views: TaskView[] = [];
    for (const [i, { queue, id, state }] of found.entries()) {
      const fields = replies[i] as Record<string, string>;
      if (!fields?.name) continue;
      const omitted: ('params' | 'result')[] = [];
      if ((fields.data?.length ?? 0) > fieldMaxBytes) omitted.push('params');
      if ((fields.returnvalue?.length ?? 0) > fieldMaxBytes) omitted.push('result');
      const kept = omitted.length === 0 ? fields : { ...fields };
      if (omitted.includes('params')) kept.data = '{}';
      if (omitted.includes('result')) kept.returnvalue = 'null';
      const job = jobFromHash(this.queue(queue), kept, id);
      const view = await this.view(job, state, fields[jobHashField.lastHeartbeat] ?? null);
      if (omitted.length > 0) {
        if (omitted.includes('params')) delete view.params;
        if (omitted.includes('result')) delete view.result;
        view.omitted = omitted;
      }
      views.push(view);
    }
    return views;
  }

  /** Resolves an incident: the failed task runs again with fresh retries; its attempt count goes on. */
  async retryTask(id: string): Promise<TaskView> {
    const normalized = normalizeTaskId(id);
    const [queueName] = await this.findQueues([normalized]);
    const result = queueName
      ? await retryIncident(this.queue(queueName), normalized)
      : ({ outcome: 'not-found' } as const);
    if (result.outcome === 'not-found') throw new JobbersError('TASK_NOT_FOUND', `no task with id "${id}"`);
    if (result.outcome === 'not-failed') {
      throw new JobbersError(
        'TASK_STATE_CONFLICT',
        `task "${normalized}" is ${result.state}; only a failed task (an incident) can be retried`,
        { state: result.state },
      );
    }
    return this.getTask(normalized);
  }

  /** Resolves up to `limit` incidents matching the filter, in bounded rounds. Bad filters throw before anything is retried. */
  async retryIncidents(
    filter: TaskFilter & { limit?: number; all?: boolean },
  ): Promise<IncidentRetrySummary> {
    const filtered = [filter.queue, filter.task, filter.before, filter.after].some((f) => f !== undefined);
    if (!filtered && filter.all !== true) {
      throw new JobbersError(
        'VALIDATION_FAILED',
        'name a filter (queue, task, before, after) or send "all": true to retry every incident',
      );
    }
    const resolved = resolveFilter(this.registry, filter, ['failed']);
    const limit = checkIncidentRetryLimit(filter.limit);
    return retryIncidents(this.connection, this.prefix, (name) => this.queue(name), resolved, limit);
  }

  /** Removes a task that has not started (waiting, prioritized, delayed); afterwards its id is unknown. */
  async cancelTask(id: string): Promise<CancelResult> {
    const normalized = normalizeTaskId(id);
    const job = await this.findJob(normalized);
    const result: CancelOutcome = job
      ? await this.canceller.cancel(job.queueName, normalized)
      : { outcome: 'not-found' };
    if (result.outcome === 'not-found') throw new JobbersError('TASK_NOT_FOUND', `no task with id "${id}"`);
    if (result.outcome === 'not-cancellable') {
      throw new JobbersError(
        'TASK_STATE_CONFLICT',
        `task "${normalized}" is ${result.state}; only a task that has not started can be cancelled`,
        { state: result.state },
      );
    }
    return {
      id: normalized,
      task: job!.name,
      queue: this.registry.queueOf(job!.queueName),
      cancelled: true,
      previousState: result.previousState,
    };
  }

  /** Workers take no new task from a paused queue; running tasks finish. */
  async pauseQueue(name: string): Promise<void> {
    this.queue(name);
    await Promise.all(this.registry.storageQueues(name).map((q) => this.queue(q).pause()));
  }

  async resumeQueue(name: string): Promise<void> {
    this.queue(name);
    await Promise.all(this.registry.storageQueues(name).map((q) => this.queue(q).resume()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
    await this.canceller.close();
  }
}

function idConflict(id: string, task: string): JobbersError {
  return new JobbersError('TASK_ID_CONFLICT', `task id "${id}" is already used by a task of type "${task}"`);
}

function createdResult(p: PreparedSubmission): SubmitResult {
  return { id: p.id, task: p.task, queue: p.queue, state: initialState(p.options), created: true };
}

interface DedupChoice {
  mode: DedupMode;
  key: string;
  windowMs: number;
}

/**
 * The submission's dedup key (its own, else the value of the task's dedupKey param) with the mode and
 * window, or undefined when it has no key. Problems go to `problems`.
 */
function dedupOf(
  def: TaskDefinition,
  params: unknown,
  request: SubmitRequest,
  problems: string[],
): DedupChoice | undefined {
  // A workflow's node runs once, as itself: never deduplicated into another task.
  if (request.workflow) return undefined;
  let key: unknown = request.dedupKey;
  if (key === undefined && def.dedupKey !== undefined && typeof params === 'object' && params !== null) {
    key = (params as Record<string, unknown>)[def.dedupKey];
    if (key !== undefined && typeof key !== 'string' && !(typeof key === 'number' && Number.isFinite(key)))
      problems.push(`param "${def.dedupKey}" is the dedup key: it must be a string or a number`);
  } else if (request.dedupKey !== undefined && (def.partitions ?? 1) > 1) {
    problems.push(
      'a partitioned task takes its dedup key from its partitionBy param, not from the submission',
    );
  }
  if (key !== undefined && (typeof key === 'string' || typeof key === 'number')) {
    const text = String(key);
    if (text.length < 1 || text.length > maxDedupKeyLength)
      problems.push(`dedupKey must be 1..${maxDedupKeyLength} characters`);
  }
  const mode = request.dedup ?? def.dedup ?? 'simple';
  const windowMs = request.dedupWindow ?? def.dedupWindow;
  if (key === undefined) {
    if (request.dedup !== undefined || request.dedupWindow !== undefined)
      problems.push(`dedup needs a dedupKey (given, or from the param the task names)`);
    return undefined;
  }
  problems.push(...dedupModeProblems(mode, windowMs));
  if (mode === 'debounce' && request.delay !== undefined)
    problems.push('debounce delays the task by its dedupWindow: leave out delay');
  return { mode, key: String(key), windowMs: windowMs ?? 0 };
}

/** A progress field as stored (JSON); a value that is not JSON is shown as the string it is. */
function parseProgress(stored: string): unknown {
  try {
    return JSON.parse(stored);
  } catch {
    return stored;
  }
}

function initialState(options: JobsOptions): TaskState {
  if (options.delay) return 'delayed';
  if (options.priority) return 'prioritized';
  return 'waiting';
}
