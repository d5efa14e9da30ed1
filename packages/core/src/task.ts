// Task definitions: defineTask, the registry that manager and worker load from one module.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { JobbersError } from './errors.js';
import { type RateLimitOption, rateLimitProblems } from './rate-limit.js';

export type JsonSchema = Record<string, unknown>;
export type ShutdownPolicy = 'finish' | 'reenqueue' | 'fail';
/**
 * How submissions with one dedup key are merged: `simple` drops a submission while a task with the
 * key is pending (not yet completed or failed for good); `throttle` keeps one per window, from the
 * first; `debounce` holds each for the window and keeps the last (a later one replaces it).
 */
export type DedupMode = 'simple' | 'throttle' | 'debounce';
export const dedupModes: readonly DedupMode[] = ['simple', 'throttle', 'debounce'];
/** The longest dedup key a submission may give. */
export const maxDedupKeyLength = 256;

export interface BackoffPolicy {
  type: 'fixed' | 'exponential';
  /** Base delay in milliseconds. */
  delay: number;
  /** 0..1: the share of each delay that is randomised (0.5 means delay * [0.5, 1]). */
  jitter?: number;
}

export interface TaskContext {
  readonly id: string;
  readonly task: string;
  readonly queue: string;
  /** 1 on the first run; counts every run of this task, across retries and incident retries. */
  readonly attempt: number;
  /** In a workflow: the results of this node's parents by node key (a result over 64 KiB reads
   * `{omitted: true}`: read that task). Empty outside a workflow. */
  readonly parents: Readonly<Record<string, unknown>>;
  /** Aborted when the execution timeout passes or the worker must stop the task. */
  readonly signal: AbortSignal;
  /** Extends the task's lease and records lastHeartbeatAt. */
  heartbeat(): Promise<void>;
  /** Gives the task back unfinished; it becomes available again after delayMs (default 0). */
  yield(delayMs?: number): Promise<never>;
  /**
   * Tells that an upstream refused the work for now (an HTTP 429 and its retry-after): the task goes
   * back to wait that long (ms), counted as rate-limited, and runs again without using a retry (its
   * attempt number is the same next time).
   */
  rateLimited(retryAfterMs: number): Promise<never>;
  /**
   * Records how far the task got: a number (e.g. a percentage) or a JSON object of at most
   * maxProgressBytes. Shown by GET /v1/tasks/:id and sent on GET /v1/events as a `progress` event.
   */
  progress(value: number | Record<string, unknown>): Promise<void>;
  /**
   * Appends a line to the task's log (GET /v1/tasks/:id `logs`). The task keeps its last
   * maxTaskLogLines lines; a line longer than maxLogLineChars is cut there.
   */
  log(line: string): Promise<void>;
}

/** When a task runs by itself: a cron pattern (in a time zone) or every N milliseconds. */
export interface TaskSchedule<P = unknown> {
  /** A cron pattern, 5 fields (minute first) or 6 (seconds first). */
  cron?: string;
  /** IANA time zone of the cron pattern. @default 'UTC' */
  tz?: string;
  /** Milliseconds between runs (instead of cron). */
  every?: number;
  /** The params of every run. @default {} */
  params?: P;
  /** No run before this time (ISO 8601). */
  start?: string;
  /** No run after this time (ISO 8601). */
  end?: string;
}

export interface TaskDefinition<P = any, R = unknown> {
  name: string;
  queue: string;
  /** Other queues a submission may route this task to. */
  queues?: string[];
  params: JsonSchema;
  /** Retries after the first attempt. */
  retries: number;
  backoff?: BackoffPolicy;
  /** Execution timeout in milliseconds; 0 or absent means none. */
  timeout?: number;
  shutdown: ShutdownPolicy;
  /**
   * Spreads the task's queue over this many partition queues (each a slot of its own on a Redis
   * Cluster, so on its own master). Every task type of a partitioned queue declares the same number;
   * workers of a role serving the queue consume every partition; metrics keep the queue's name.
   */
  partitions?: number;
  /**
   * The param whose value picks the partition (by hash), so tasks with one value stay in order
   * within one partition. Absent: round-robin.
   */
  partitionBy?: string;
  /**
   * At most `max` starts per `per` window (ms, or `'1s'`, `'1m'`...), per task type and, with `key`,
   * per value of that param, across every worker. Checked when a worker activates the task: a task
   * over the limit waits, counted as rate-limited, and uses no retry. See docs/rate-limits.md.
   */
  rateLimit?: RateLimitOption;
  /**
   * The param whose value is the task's dedup key (a submission may give its own key instead).
   * A submission without a key is not deduplicated.
   */
  dedupKey?: string;
  /** @default 'simple' */
  dedup?: DedupMode;
  /** Milliseconds: the window of `throttle` and `debounce` (required by them). */
  dedupWindow?: number;
  /**
   * Submits the task on a schedule (see schedules.ts): its id is the task's name. Managers create it
   * at start; the API can pause and resume it.
   */
  schedule?: TaskSchedule<P>;
  run(params: P, ctx: TaskContext): Promise<R> | R;
}

export type TaskInput<P, R> = Omit<TaskDefinition<P, R>, 'retries' | 'shutdown'> &
  Partial<Pick<TaskDefinition<P, R>, 'retries' | 'shutdown'>>;

const taskNamePattern = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/i;
export const queueNamePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const maxRetries = 100;
/** The most partitions a queue may have. */
export const maxPartitions = 256;
/** Log lines a task keeps (its oldest go first). */
export const maxTaskLogLines = 1000;
/** Characters a log line keeps; the rest is cut. */
export const maxLogLineChars = 8192;
/** The largest progress value, as JSON. */
export const maxProgressBytes = 16 * 1024;
/** The longest a Node timer can wait (2^31-1 ms, about 24.8 days): bounds timeouts and backoff delays. */
export const maxTimerMs = 2 ** 31 - 1;

export function defineTask<P = any, R = unknown>(input: TaskInput<P, R>): TaskDefinition<P, R> {
  const def: TaskDefinition<P, R> = { retries: 0, shutdown: 'finish', ...input };
  const problems = definitionProblems(def);
  if (problems.length > 0) {
    throw new JobbersError(
      'TASK_DEFINITION_INVALID',
      `task "${String(input?.name)}" is invalid: ${problems.join('; ')}`,
    );
  }
  return Object.freeze(def);
}

function definitionProblems(def: TaskDefinition): string[] {
  const problems: string[] = [];
  if (typeof def.name !== 'string' || !taskNamePattern.test(def.name)) {
    problems.push('name must look like "area.action" (letters, digits, _ - and dots)');
  }
  for (const queue of [def.queue, ...(def.queues ?? [])]) {
    if (typeof queue !== 'string' || !queueNamePattern.test(queue)) {
      problems.push(`queue "${String(queue)}" must be 1-64 of [A-Za-z0-9_.-]`);
    }
  }
  if (typeof def.params !== 'object' || def.params === null) problems.push('params must be a JSON schema');
  if (!Number.isInteger(def.retries) || def.retries < 0 || def.retries > maxRetries) {
    problems.push(`retries must be an integer 0..${maxRetries}`);
  }
  if (def.backoff) problems.push(...backoffProblems(def.backoff));
  if (
    def.timeout !== undefined &&
    (!Number.isInteger(def.timeout) || def.timeout < 0 || def.timeout > maxTimerMs)
  ) {
    problems.push(`timeout must be whole milliseconds 0..${maxTimerMs}`);
  }
  if (!['finish', 'reenqueue', 'fail'].includes(def.shutdown)) {
    problems.push('shutdown must be finish, reenqueue or fail');
  }
  if (typeof def.run !== 'function') problems.push('run must be a function');
  problems.push(...partitionProblems(def));
  problems.push(...dedupProblems(def));
  if (def.rateLimit !== undefined) problems.push(...rateLimitProblems(def.rateLimit, def.params));
  return problems;
}

function dedupProblems(def: TaskDefinition): string[] {
  const problems: string[] = [];
  if (def.dedupKey !== undefined && (typeof def.dedupKey !== 'string' || def.dedupKey === ''))
    problems.push('dedupKey must name a param');
  problems.push(...dedupModeProblems(def.dedup, def.dedupWindow));
  if (def.dedupKey !== undefined && (def.partitions ?? 1) > 1 && def.partitionBy !== def.dedupKey)
    problems.push('a partitioned task deduplicates within a partition: set partitionBy to its dedupKey');
  return problems;
}

/** What is wrong with a dedup mode and window, as a definition or a submission gives them. */
export function dedupModeProblems(mode: unknown, windowMs: unknown): string[] {
  const problems: string[] = [];
  if (mode !== undefined && !dedupModes.includes(mode as DedupMode))
    problems.push('dedup must be simple, throttle or debounce');
  const windowed = mode === 'throttle' || mode === 'debounce';
  if (
    windowMs !== undefined &&
    (!Number.isInteger(windowMs) || (windowMs as number) < 1 || (windowMs as number) > maxTimerMs)
  )
    problems.push(`dedupWindow must be whole milliseconds 1..${maxTimerMs}`);
  else if (windowed && windowMs === undefined) problems.push(`dedup ${mode} needs dedupWindow`);
  return problems;
}

function partitionProblems(def: TaskDefinition): string[] {
  const problems: string[] = [];
  if (def.partitions !== undefined) {
    if (!Number.isInteger(def.partitions) || def.partitions < 1 || def.partitions > maxPartitions)
      problems.push(`partitions must be an integer 1..${maxPartitions}`);
    if (def.queues?.length) problems.push('a partitioned task runs on its one queue: drop queues');
  }
  if (def.partitionBy !== undefined) {
    if (def.partitions === undefined) problems.push('partitionBy needs partitions');
    if (typeof def.partitionBy !== 'string' || def.partitionBy === '')
      problems.push('partitionBy must name a param');
  }
  return problems;
}

/**
 * The queue that stores partition `index` of a partitioned queue. `~` is not allowed in queue
 * names, so a partition never collides with a queue of its own.
 */
export function partitionQueueName(queue: string, index: number): string {
  return `${queue}~${index}`;
}

/** The queue a storage queue belongs to: the name before `~` for a partition, else the name itself. */
export function queueOfStorage(storageQueue: string): string {
  const cut = storageQueue.lastIndexOf('~');
  return cut < 0 ? storageQueue : storageQueue.slice(0, cut);
}

export function backoffProblems(backoff: BackoffPolicy): string[] {
  const problems: string[] = [];
  if (!['fixed', 'exponential'].includes(backoff.type))
    problems.push('backoff.type must be fixed or exponential');
  if (!Number.isInteger(backoff.delay) || backoff.delay < 0 || backoff.delay > maxTimerMs) {
    problems.push(`backoff.delay must be whole milliseconds 0..${maxTimerMs}`);
  }
  if (backoff.jitter !== undefined && !(backoff.jitter >= 0 && backoff.jitter <= 1)) {
    problems.push('backoff.jitter must be between 0 and 1');
  }
  return problems;
}

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/** The task types one module defines, with their compiled params validators. */
export class TaskRegistry {
  private readonly byName = new Map<string, TaskDefinition>();
  private readonly validators = new Map<string, ValidateFunction>();

  /** Partitions per partitioned queue. */
  private readonly partitionCounts = new Map<string, number>();
  /** The queue each partition queue belongs to. */
  private readonly partitionOwner = new Map<string, string>();

  constructor(definitions: Iterable<TaskDefinition>) {
    const ajv = addFormats(new Ajv({ allErrors: true, strict: false, coerceTypes: false }));
    const all = [...definitions];
    for (const def of all) {
      if (this.byName.has(def.name)) {
        throw new JobbersError('TASKS_MODULE_INVALID', `task "${def.name}" is defined twice`);
      }
      this.byName.set(def.name, def);
      try {
        this.validators.set(def.name, ajv.compile(def.params));
      } catch (error) {
        throw new JobbersError(
          'TASK_DEFINITION_INVALID',
          `task "${def.name}" has an invalid params schema: ${(error as Error).message}`,
        );
      }
    }
    this.checkPartitions(all);
  }

  /** Every task type of a partitioned queue declares the same number of partitions. */
  private checkPartitions(definitions: TaskDefinition[]): void {
    for (const def of definitions) {
      if (def.partitions === undefined || def.partitions <= 1) continue;
      const known = this.partitionCounts.get(def.queue);
      if (known !== undefined && known !== def.partitions) {
        throw new JobbersError(
          'TASKS_MODULE_INVALID',
          `queue "${def.queue}" is declared with ${known} and ${def.partitions} partitions: give every task type of it the same number`,
        );
      }
      this.partitionCounts.set(def.queue, def.partitions);
    }
    for (const def of definitions) {
      for (const queue of [def.queue, ...(def.queues ?? [])]) {
        const count = this.partitionCounts.get(queue);
        if (count !== undefined && def.partitions !== count) {
          throw new JobbersError(
            'TASKS_MODULE_INVALID',
            `task "${def.name}" runs on queue "${queue}", which has ${count} partitions: declare partitions: ${count}`,
          );
        }
      }
    }
    for (const [queue, count] of this.partitionCounts)
      for (let i = 0; i < count; i++) this.partitionOwner.set(partitionQueueName(queue, i), queue);
  }

  /** The partitions of a queue; 1 when it is not partitioned. */
  partitionsOf(queue: string): number {
    return this.partitionCounts.get(queue) ?? 1;
  }

  /**
   * The queues that store a queue's tasks (its partitions, or the queue itself), or every queue's
   * when none is named: what workers consume, the exporter follows and id lookups search.
   */
  storageQueues(queue?: string): string[] {
    if (queue === undefined) return this.queues.flatMap((q) => this.storageQueues(q));
    const count = this.partitionCounts.get(queue);
    if (count === undefined) return [queue];
    return Array.from({ length: count }, (_, i) => partitionQueueName(queue, i));
  }

  /** The queue a storage queue belongs to (the queue itself when it is not a partition). */
  queueOf(storageQueue: string): string {
    return this.partitionOwner.get(storageQueue) ?? storageQueue;
  }

  /** The partition index of a storage queue, undefined when it is not a partition. */
  partitionIndexOf(storageQueue: string): number | undefined {
    if (!this.partitionOwner.has(storageQueue)) return undefined;
    return Number(storageQueue.slice(storageQueue.lastIndexOf('~') + 1));
  }

  get names(): string[] {
    return [...this.byName.keys()];
  }

  get definitions(): TaskDefinition[] {
    return [...this.byName.values()];
  }

  /** Every queue any task may run on. */
  get queues(): string[] {
    const queues = new Set<string>();
    for (const def of this.byName.values()) {
      queues.add(def.queue);
      for (const q of def.queues ?? []) queues.add(q);
    }
    return [...queues].sort();
  }

  find(name: string): TaskDefinition | undefined {
    return this.byName.get(name);
  }

  get(name: string): TaskDefinition {
    const def = this.byName.get(name);
    if (!def) {
      throw new JobbersError('UNKNOWN_TASK_TYPE', `unknown task type "${name}"`, { known: this.names });
    }
    return def;
  }

  /** True when params match the task's schema. */
  acceptsParams(name: string, params: unknown): boolean {
    this.get(name);
    return this.validators.get(name)!(params) === true;
  }

  /** Throws INVALID_PARAMS with the schema errors when params do not match the task's schema. */
  validateParams(name: string, params: unknown): void {
    this.get(name);
    const validate = this.validators.get(name)!;
    if (!validate(params)) {
      throw new JobbersError(
        'INVALID_PARAMS',
        `params do not match the schema of "${name}": ${describeSchemaErrors(validate.errors)}`,
        validate.errors?.map((e) => ({ path: e.instancePath || '/', message: e.message, params: e.params })),
      );
    }
  }
}

function describeSchemaErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join(', ');
}

function isTaskDefinition(value: unknown): value is TaskDefinition {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as TaskDefinition).name === 'string' &&
    typeof (value as TaskDefinition).run === 'function'
  );
}

/** Collects task definitions from a module: its default export (array or object) and named exports. */
export function tasksFromModule(mod: Record<string, unknown>): TaskDefinition[] {
  const found = new Map<string, TaskDefinition>();
  const visit = (value: unknown) => {
    if (isTaskDefinition(value)) found.set(value.name, value);
    else if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object' && value === mod.default) Object.values(value).forEach(visit);
  };
  for (const value of Object.values(mod)) visit(value);
  return [...found.values()];
}
