// The cleaner's flags and env, parsed and validated once into CleanerOptions.
import {
  isJobbersError,
  loadCommonConfig,
  parseDurationMs,
  queueNamePattern,
  type TaskRegistry,
} from '@jobbers/core';

export const cleanerStates = ['completed', 'failed', 'waiting', 'delayed'] as const;
export type CleanerState = (typeof cleanerStates)[number];

/** Without --state the cleaner prunes finished tasks only; pending work is removed only when named. */
export const defaultStates: readonly CleanerState[] = ['completed', 'failed'];

export interface CleanerOptions {
  redisUrl: string;
  prefix: string;
  /** JOBBERS_TASKS / --tasks; when set, --queue and --task are checked against the registry. */
  tasksModule?: string;
  /** Undefined: every queue (the registry's, or those found in Redis). */
  queues?: string[];
  tasks?: string[];
  states: CleanerState[];
  /** --before: only tasks submitted before this instant (unix ms). */
  submittedBeforeMs?: number;
  /** --older-than: only tasks submitted longer ago than this, measured when the run starts. */
  olderThanMs?: number;
  dryRun: boolean;
  limit?: number;
  json: boolean;
  metricsFlushMs: number;
  redisCommandTimeoutMs: number;
}

/** What commander hands over: repeatable flags as arrays, the rest as strings or booleans. */
export interface CleanerFlags {
  queue?: string[];
  task?: string[];
  state?: string[];
  before?: string;
  olderThan?: string;
  dryRun?: boolean;
  limit?: string;
  json?: boolean;
  tasks?: string;
}

/** Bad flags or env: the CLI prints the message and exits 2 without touching Redis. */
export class UsageError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0] : `invalid usage:\n  - ${problems.join('\n  - ')}`);
    this.name = 'UsageError';
  }
}

const isoPattern = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/** An ISO 8601 date or date-time -> unix ms; undefined when malformed. */
export function parseIsoInstant(text: string): number | undefined {
  if (!isoPattern.test(text.trim())) return undefined;
  const ms = Date.parse(text.trim());
  return Number.isNaN(ms) ? undefined : ms;
}

/** Splits `a,b` and drops blanks, so `--state completed,failed` and repeated flags both work. */
export function collectList(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean),
  ];
}

const unique = <T>(values: T[]): T[] => [...new Set(values)];

export function parseCleanerOptions(
  flags: CleanerFlags,
  env: Record<string, string | undefined> = process.env,
): CleanerOptions {
  const problems: string[] = [];
  const common = readEnv(flags, env, problems);

  const queues = flags.queue?.length ? unique(flags.queue) : undefined;
  for (const queue of queues ?? []) {
    if (!queueNamePattern.test(queue))
      problems.push(`--queue "${queue}" is not a queue name (1-64 of [A-Za-z0-9_.-])`);
  }
  const tasks = flags.task?.length ? unique(flags.task) : undefined;
  for (const task of tasks ?? []) {
    if (!/^[^\s|]{1,200}$/.test(task)) problems.push(`--task "${task}" is not a task type name`);
  }
  const states = unique(flags.state ?? []);
  for (const state of states) {
    if (!(cleanerStates as readonly string[]).includes(state)) {
      problems.push(
        `--state "${state}" is not one of ${cleanerStates.join(', ')} (active tasks are never removed)`,
      );
    }
  }

  if (flags.before !== undefined && flags.olderThan !== undefined) {
    problems.push('--before and --older-than both set a submission-time limit: give one of them');
  }
  let submittedBeforeMs: number | undefined;
  if (flags.before !== undefined) {
    submittedBeforeMs = parseIsoInstant(flags.before);
    if (submittedBeforeMs === undefined) {
      problems.push(
        `--before "${flags.before}" is not an ISO 8601 time (e.g. 2025-01-31 or 2025-01-31T12:00:00Z)`,
      );
    }
  }
  let olderThanMs: number | undefined;
  if (flags.olderThan !== undefined) {
    olderThanMs = parseDurationMs(flags.olderThan);
    if (olderThanMs === undefined) {
      problems.push(
        `--older-than "${flags.olderThan}" is not a duration: a whole number and a unit (ms, s, m, h, d, w), e.g. 30s, 15m, 7d`,
      );
    }
  }
  let limit: number | undefined;
  if (flags.limit !== undefined) {
    limit = Number(flags.limit);
    if (!/^\d+$/.test(flags.limit.trim()) || !Number.isSafeInteger(limit) || limit < 1) {
      problems.push(`--limit "${flags.limit}" must be a whole number >= 1`);
    }
  }

  const hasFilter =
    queues !== undefined ||
    tasks !== undefined ||
    states.length > 0 ||
    flags.before !== undefined ||
    flags.olderThan !== undefined;
  if (!hasFilter) {
    problems.push(
      'refusing to run without a filter (that would prune every queue): give at least one of ' +
        '--queue, --task, --state, --before, --older-than, e.g. --state completed --older-than 7d',
    );
  }
  if (problems.length > 0) throw new UsageError(problems);

  return {
    ...common,
    queues,
    tasks,
    states: states.length > 0 ? sortStates(states as CleanerState[]) : [...defaultStates],
    submittedBeforeMs,
    olderThanMs,
    dryRun: flags.dryRun === true,
    limit,
    json: flags.json === true,
  };
}

function readEnv(
  flags: CleanerFlags,
  env: Record<string, string | undefined>,
  problems: string[],
): Pick<CleanerOptions, 'redisUrl' | 'prefix' | 'tasksModule' | 'metricsFlushMs' | 'redisCommandTimeoutMs'> {
  const merged = { ...env };
  if (flags.tasks !== undefined) merged.JOBBERS_TASKS = flags.tasks;
  try {
    const config = loadCommonConfig(merged, false);
    return {
      redisUrl: config.redisUrl,
      prefix: config.prefix,
      tasksModule: config.tasksModule || undefined,
      metricsFlushMs: config.metricsFlushMs,
      redisCommandTimeoutMs: config.redisCommandTimeoutMs,
    };
  } catch (error) {
    if (!isJobbersError(error)) throw error;
    problems.push(...((error.details as string[] | undefined) ?? [error.message]));
    return { redisUrl: '', prefix: '', metricsFlushMs: 1000, redisCommandTimeoutMs: 1500 };
  }
}

function sortStates(states: CleanerState[]): CleanerState[] {
  return [...states].sort((a, b) => cleanerStates.indexOf(a) - cleanerStates.indexOf(b));
}

/** With a task registry, --task and --queue must name registered task types and queues. */
export function checkAgainstRegistry(options: CleanerOptions, registry: TaskRegistry): void {
  const problems: string[] = [];
  for (const task of options.tasks ?? []) {
    if (!registry.find(task)) {
      problems.push(
        `--task "${task}" is not a task type of ${options.tasksModule}; known: ${registry.names.join(', ')}`,
      );
    }
  }
  for (const queue of options.queues ?? []) {
    if (!registry.queues.includes(queue)) {
      problems.push(
        `--queue "${queue}" is not a queue of ${options.tasksModule}; known: ${registry.queues.join(', ')}`,
      );
    }
  }
  if (problems.length > 0) throw new UsageError(problems);
}

/** The submission-time cutoff of a run that starts at nowMs: tasks submitted before it match. */
export function submissionCutoffMs(options: CleanerOptions, nowMs: number): number | undefined {
  if (options.olderThanMs !== undefined) return nowMs - options.olderThanMs;
  return options.submittedBeforeMs;
}
