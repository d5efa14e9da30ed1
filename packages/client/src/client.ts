// The HTTP client of the REST API, on fetch alone (Node 20+ and browsers). Submissions carry an id
// made here (a ULID), so a submission retried after a lost answer is the same task: the manager
// answers 200 with the task it already has. Requests that are safe to repeat are retried with
// backoff on 503, 429 and network errors; the others are sent once.
import type {
  BackoffPolicy,
  CancelResult,
  IncidentRetrySummary,
  ListableState,
  NodeFailurePolicy,
  TaskFilter,
  TaskPage,
  TaskState,
  TaskView,
  WorkflowView,
} from '@jobbers/core';
import { monotonicFactory } from 'ulid';
import { JobbersApiError, JobbersTimeoutError, TaskFailedError } from './errors.js';
import type { ParamsOf, ResultOf, TaskLike } from './task-ref.js';

export interface ClientOptions {
  /** The manager's address, e.g. `http://localhost:8080`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>` when the manager has JOBBERS_API_KEYS. */
  apiKey?: string;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Retries of a request that is safe to repeat, after the first try. @default 5 */
  retries?: number;
  /** First retry delay; it doubles per retry, with jitter, up to `retryMaxDelayMs`. @default 100 */
  retryBaseDelayMs?: number;
  /** @default 5000 */
  retryMaxDelayMs?: number;
  /** One request's time limit. @default 30000 */
  requestTimeoutMs?: number;
}

export interface SubmitOptions {
  /** Default: a new ULID made by the client, so a retried submission is the same task. */
  id?: string;
  queue?: string;
  /** Milliseconds before the task becomes available. */
  delay?: number;
  /** 1 runs first; 0 or absent is no priority. */
  priority?: number;
  retries?: number;
  /** Execution timeout in milliseconds. */
  timeout?: number;
  backoff?: BackoffPolicy;
}

export interface Submitted {
  id: string;
  task: string;
  queue: string;
  state: TaskState;
  /** False when a task with this id existed already (nothing was enqueued). */
  created: boolean;
}

export interface ListOptions extends TaskFilter {
  state?: ListableState;
  limit?: number;
  cursor?: string;
  /** Include params and results however large they are. */
  full?: boolean;
}

export interface RetryIncidentsOptions extends TaskFilter {
  limit?: number;
  /** Required (true) when no filter is given: retries every incident. */
  all?: boolean;
}

export interface QueueSummary {
  name: string;
  paused: boolean;
  counts: Record<string, number>;
  /** Per task type; null until the exporter's first count of the queue is done. */
  available: Record<string, number | null>;
  recounting: boolean;
  tasks: string[];
}

export interface ResultOptions {
  /** Give up (JobbersTimeoutError) after this long. @default 60000 */
  timeoutMs?: number;
  /** How often the task is read while it runs. @default 250 */
  pollIntervalMs?: number;
}

export interface WorkflowNodeInput<T extends TaskLike = TaskLike> {
  key: string;
  task: T;
  params: ParamsOf<T>;
  options?: Omit<SubmitOptions, 'id'>;
  dependsOn?: string[];
  onFailure?: NodeFailurePolicy;
}

export interface WorkflowSubmitted {
  id: string;
  name: string;
  state: WorkflowView['state'];
  /** False when a workflow with this id existed already (nothing was submitted). */
  created: boolean;
  submitted: Omit<Submitted, 'created'>[];
}

/** One task's bound helpers: `client.task(resize).submit(params)`. */
export interface BoundTask<P, R> {
  submit(params: P, options?: SubmitOptions): Promise<Submitted>;
  /** Submits and waits for the result. */
  run(params: P, options?: SubmitOptions & ResultOptions): Promise<R>;
}

const retryableStatuses = new Set([429, 502, 503, 504]);

export class JobbersClient {
  private readonly baseUrl: string;
  private readonly fetch: typeof fetch;
  private readonly retries: number;
  private readonly retryBaseDelayMs: number;
  private readonly retryMaxDelayMs: number;
  private readonly requestTimeoutMs: number;
  private readonly newId = monotonicFactory();

  constructor(private readonly options: ClientOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new TypeError(`baseUrl "${options.baseUrl}" is not a URL (e.g. http://localhost:8080)`);
    }
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.retries = checkCount('retries', options.retries ?? 5);
    this.retryBaseDelayMs = checkCount('retryBaseDelayMs', options.retryBaseDelayMs ?? 100);
    this.retryMaxDelayMs = checkCount('retryMaxDelayMs', options.retryMaxDelayMs ?? 5000);
    this.requestTimeoutMs = checkCount('requestTimeoutMs', options.requestTimeoutMs ?? 30_000);
  }

  /** Submits one task. Safe to retry: the id is fixed before the first try. */
  async submit<T extends TaskLike>(
    task: T,
    params: ParamsOf<T>,
    options: SubmitOptions = {},
  ): Promise<Submitted> {
    const body = { ...options, id: options.id ?? this.newId(), task: task.name, params };
    const { status, body: result } = await this.call<Omit<Submitted, 'created'>>(
      'POST',
      '/v1/tasks',
      body,
      true,
    );
    return { ...result, created: status === 201 };
  }

  /** Submits up to 1000 tasks in one request; one invalid task rejects them all. */
  async submitBatch(
    tasks: { task: TaskLike; params: unknown; options?: SubmitOptions }[],
  ): Promise<Omit<Submitted, 'created'>[]> {
    const body = {
      tasks: tasks.map(({ task, params, options = {} }) => ({
        ...options,
        id: options.id ?? this.newId(),
        task: task.name,
        params,
      })),
    };
    const { body: result } = await this.call<{ tasks: Omit<Submitted, 'created'>[] }>(
      'POST',
      '/v1/tasks/batch',
      body,
      true,
    );
    return result.tasks;
  }

  /** The task's state, params, result or error, attempts and times. 404 (JobbersApiError) when unknown. */
  async get(id: string): Promise<TaskView> {
    return (await this.call<TaskView>('GET', `/v1/tasks/${encodeURIComponent(id)}`, undefined, true)).body;
  }

  async list(options: ListOptions = {}): Promise<TaskPage> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(options))
      if (value !== undefined) query.set(key, String(value));
    const search = query.size > 0 ? `?${query}` : '';
    return (await this.call<TaskPage>('GET', `/v1/tasks${search}`, undefined, true)).body;
  }

  /** Cancels a task that has not started. Sent once: a repeat after a lost answer would read 404. */
  async cancel(id: string): Promise<CancelResult> {
    return (await this.call<CancelResult>('POST', `/v1/tasks/${encodeURIComponent(id)}/cancel`, {}, false))
      .body;
  }

  /** Resolves an incident: a failed task runs again. Sent once. */
  async retry(id: string): Promise<TaskView> {
    return (await this.call<TaskView>('POST', `/v1/tasks/${encodeURIComponent(id)}/retry`, {}, false)).body;
  }

  /** Mass retry of incidents; needs a filter or `all: true`. Sent once. */
  async retryIncidents(options: RetryIncidentsOptions): Promise<IncidentRetrySummary> {
    return (await this.call<IncidentRetrySummary>('POST', '/v1/tasks/retry', options, false)).body;
  }

  async queues(): Promise<QueueSummary[]> {
    return (await this.call<{ queues: QueueSummary[] }>('GET', '/v1/queues', undefined, true)).body.queues;
  }

  async queue(name: string): Promise<QueueSummary> {
    return (await this.call<QueueSummary>('GET', `/v1/queues/${encodeURIComponent(name)}`, undefined, true))
      .body;
  }

  async pause(queue: string): Promise<QueueSummary> {
    return (await this.call<QueueSummary>('POST', `/v1/queues/${encodeURIComponent(queue)}/pause`, {}, true))
      .body;
  }

  async resume(queue: string): Promise<QueueSummary> {
    return (await this.call<QueueSummary>('POST', `/v1/queues/${encodeURIComponent(queue)}/resume`, {}, true))
      .body;
  }

  /**
   * Waits until the task completed and answers its result. It follows the manager's event stream
   * (GET /v1/events for this task) and reads the task when it moves, and polls where the stream is
   * not available. A failed task (an incident) or one that is gone (cancelled, cleaned) rejects with
   * TaskFailedError; the time limit with JobbersTimeoutError.
   */
  async result<T extends TaskLike = TaskLike<unknown, unknown>>(
    id: string,
    options: ResultOptions = {},
  ): Promise<ResultOf<T>> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const stream = await this.openEvents(id, controller.signal);
      for (;;) {
        // Read after subscribing: a task that finished before the stream opened is seen here.
        const view = await this.readFinished(id);
        if (view) return this.outcome<T>(view);
        if (Date.now() >= deadline) break;
        const moved = stream ? await nextEvent(stream) : false;
        if (!moved) await sleep(Math.min(options.pollIntervalMs ?? 250, Math.max(0, deadline - Date.now())));
        if (controller.signal.aborted) break;
      }
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
    const last = await this.readFinished(id);
    if (last) return this.outcome<T>(last);
    throw new JobbersTimeoutError(`task ${id} did not finish within ${timeoutMs} ms`);
  }

  /** The task once it is final (completed or failed); undefined while it is not. */
  private async readFinished(id: string): Promise<TaskView | undefined> {
    try {
      const view = await this.get(id);
      return view.state === 'completed' || view.state === 'failed' ? view : undefined;
    } catch (error) {
      if (error instanceof JobbersApiError && error.status === 404) throw new TaskFailedError(id, 'gone');
      throw error;
    }
  }

  private outcome<T extends TaskLike>(view: TaskView): ResultOf<T> {
    if (view.state === 'failed') throw new TaskFailedError(view.id, 'failed', view.error);
    return view.result as ResultOf<T>;
  }

  /** The task's event stream, or undefined where the manager serves none (then result() polls). */
  private async openEvents(
    id: string,
    signal: AbortSignal,
  ): Promise<ReadableStreamDefaultReader<Uint8Array> | undefined> {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.options.apiKey !== undefined) headers.authorization = `Bearer ${this.options.apiKey}`;
    try {
      const response = await this.fetch(`${this.baseUrl}/v1/events?id=${encodeURIComponent(id)}`, {
        headers,
        signal,
      });
      if (!response.ok || !response.body) {
        await response.body?.cancel();
        return undefined;
      }
      return response.body.getReader();
    } catch (error) {
      if (signal.aborted) return undefined;
      // No stream (an older manager, a proxy that buffers): polling does the job.
      if (error instanceof TypeError) return undefined;
      throw error;
    }
  }

  /**
   * Submits a workflow: a DAG of nodes, each run once its parents completed (their results reach it
   * as ctx.parents). Its id is made before the first try, so a retry is the same workflow.
   */
  async submitWorkflow(workflow: {
    name: string;
    id?: string;
    nodes: WorkflowNodeInput[];
  }): Promise<WorkflowSubmitted> {
    const body = {
      name: workflow.name,
      id: workflow.id ?? this.newId(),
      nodes: workflow.nodes.map(({ key, task, params, options, dependsOn, onFailure }) => ({
        ...options,
        key,
        task: task.name,
        params,
        ...(dependsOn ? { dependsOn } : {}),
        ...(onFailure ? { onFailure } : {}),
      })),
    };
    const { status, body: result } = await this.call<Omit<WorkflowSubmitted, 'created'>>(
      'POST',
      '/v1/workflows',
      body,
      true,
    );
    return { ...result, created: status === 201 };
  }

  /** Every node's state, the frontier and where the workflow has been. */
  async workflow(id: string): Promise<WorkflowView> {
    return (await this.call<WorkflowView>('GET', `/v1/workflows/${encodeURIComponent(id)}`, undefined, true))
      .body;
  }

  /** Cancels a running workflow (409 otherwise). Sent once. */
  async cancelWorkflow(id: string): Promise<WorkflowView> {
    return (
      await this.call<WorkflowView>('POST', `/v1/workflows/${encodeURIComponent(id)}/cancel`, {}, false)
    ).body;
  }

  /** Runs a failed workflow again from where it failed (409 otherwise). Sent once. */
  async retryWorkflow(id: string): Promise<WorkflowView> {
    return (await this.call<WorkflowView>('POST', `/v1/workflows/${encodeURIComponent(id)}/retry`, {}, false))
      .body;
  }

  /** Waits until the workflow completed or failed and answers it. */
  async workflowFinished(id: string, options: ResultOptions = {}): Promise<WorkflowView> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const view = await this.workflow(id);
      if (view.state !== 'running') return view;
      const left = deadline - Date.now();
      if (left <= 0) throw new JobbersTimeoutError(`workflow ${id} did not finish within ${timeoutMs} ms`);
      await sleep(Math.min(options.pollIntervalMs ?? 250, left));
    }
  }

  /** The helpers of one task, typed from its definition or reference. */
  task<T extends TaskLike>(task: T): BoundTask<ParamsOf<T>, ResultOf<T>> {
    return {
      submit: (params, options) => this.submit(task, params, options),
      run: async (params, options = {}) => {
        const { timeoutMs, pollIntervalMs, ...submitOptions } = options;
        const { id } = await this.submit(task, params, submitOptions);
        return this.result<T>(id, { timeoutMs, pollIntervalMs });
      },
    };
  }

  private async call<B>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    repeatable: boolean,
  ): Promise<{ status: number; body: B }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.options.apiKey !== undefined) headers.authorization = `Bearer ${this.options.apiKey}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      const canRetry = repeatable && attempt < this.retries;
      let response: Response;
      try {
        response = await this.fetch(`${this.baseUrl}${path}`, {
          method,
          headers,
          body: payload,
          signal: AbortSignal.timeout(this.requestTimeoutMs),
        });
      } catch (error) {
        // No answer: refused, reset, or timed out. A repeatable request is sent again.
        if (canRetry) {
          await sleep(this.backoffMs(attempt));
          continue;
        }
        if (error instanceof Error && error.name === 'TimeoutError')
          throw new JobbersTimeoutError(`${method} ${path}: no answer within ${this.requestTimeoutMs} ms`);
        throw error;
      }
      if (response.ok) return { status: response.status, body: (await response.json()) as B };
      const failure = await apiError(response);
      if (canRetry && retryableStatuses.has(response.status)) {
        await sleep(Math.max(this.backoffMs(attempt), retryAfterMs(response) ?? 0));
        continue;
      }
      throw failure;
    }
  }

  private backoffMs(attempt: number): number {
    const ceiling = Math.min(this.retryMaxDelayMs, this.retryBaseDelayMs * 2 ** attempt);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }
}

export function createClient(options: ClientOptions): JobbersClient {
  return new JobbersClient(options);
}

async function apiError(response: Response): Promise<JobbersApiError> {
  const text = await response.text();
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string; details?: unknown } };
    if (parsed.error?.code)
      return new JobbersApiError(
        response.status,
        parsed.error.code,
        parsed.error.message ?? '',
        parsed.error.details,
      );
  } catch (error) {
    // Not the API's JSON (a proxy's page, say): reported below with the start of the text.
    if (!(error instanceof SyntaxError)) throw error;
  }
  return new JobbersApiError(
    response.status,
    `HTTP_${response.status}`,
    text.slice(0, 200) || response.statusText,
  );
}

function retryAfterMs(response: Response): number | undefined {
  const value = response.headers.get('retry-after');
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function checkCount(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0)
    throw new TypeError(`${name} must be a whole number >= 0, got ${value}`);
  return value;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits for the next event of a Server-Sent Events stream (any `data:` line); false when the stream
 * ended or was aborted. Comments (keep-alives) and the retry hint are skipped.
 */
async function nextEvent(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<boolean> {
  const decoder = new TextDecoder();
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (error instanceof Error && error.name === 'AbortError') return false;
      throw error;
    }
    if (chunk.done) return false;
    if (/(^|\n)data:/.test(decoder.decode(chunk.value, { stream: true }))) return true;
  }
}
