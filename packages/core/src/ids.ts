// Task ids: ULIDs generated here, or ids chosen by the client in advance.
import { randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';
import { queueOwnKeyNames } from './bullmq/keys.js';
import { scheduledJobIdPattern } from './bullmq/schedulers.js';
import { JobbersError } from './errors.js';

const ulidPattern = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const clientIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

// A job's hash is `<prefix>:<queue>:<id>`: an id equal to one of the queue's own key names (`meta`,
// `wait`, `events`, ...) or to Jobbers' `jobbers` namespace would read or overwrite that key.
const reservedIds = new Set([...queueOwnKeyNames, 'jobbers']);

/**
 * What normalizeTaskId accepts, as one ECMAScript pattern (for the API document): a ULID in any case,
 * a schedule's run (`repeat:<schedule>:<tick ms>`), or a client id that is not all digits and not a
 * reserved name.
 */
export const taskIdPattern = `^(?:[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}|${scheduledJobIdPattern.source.slice(1, -1)}|(?!\\d+$)(?!(?:${[
  ...reservedIds,
]
  .map((name) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  .join('|')})$)[A-Za-z0-9][A-Za-z0-9_.-]{0,127})$`;

/**
 * What normalizeWorkflowId accepts (for the API document): a task id that is not a schedule's run.
 * A workflow's nodes are the tasks `<workflow id>.<key>`, and a schedule's run id (`repeat:...`)
 * followed by a key is no task id.
 */
export const workflowIdPattern = `^(?!${scheduledJobIdPattern.source.slice(1, -1)}$)${taskIdPattern.slice(1)}`;

// One factory for the process: `ulid()` looks up its random source on every call, which showed up
// as a quarter of the manager's CPU in the REST bench; monotonic ids also sort within a millisecond.
const nextUlid = monotonicFactory(pooledRandom());

/**
 * Cryptographic random fractions in [0, 1), one byte each, drawn from a pool refilled 4 KiB at a
 * time: ulid's own source asks the OS for one byte per character (16 calls an id), which was the
 * largest single cost of a REST submission after the HTTP and Redis work.
 */
function pooledRandom(): () => number {
  const pool = Buffer.alloc(4096);
  let next = pool.length;
  return () => {
    if (next === pool.length) {
      randomFillSync(pool);
      next = 0;
    }
    return pool[next++]! / 256;
  };
}

export function newTaskId(): string {
  return nextUlid();
}

export function isUlid(id: string): boolean {
  return ulidPattern.test(id);
}

/**
 * Accepts a ULID (any case, stored upper case) or an id of the client's own making:
 * 1-128 characters of letters, digits, `_`, `.`, `-`, not all digits (BullMQ reserves those), and not
 * the name of one of the queue's own keys.
 */
export function normalizeTaskId(id: string): string {
  if (typeof id !== 'string' || id.length === 0) {
    throw new JobbersError('INVALID_TASK_ID', 'task id must be a non-empty string');
  }
  if (id.length === 26 && ulidPattern.test(id.toUpperCase())) return id.toUpperCase();
  // A schedule's run: the id its Job Scheduler gave it.
  if (scheduledJobIdPattern.test(id)) return id;
  if (!clientIdPattern.test(id)) {
    throw new JobbersError(
      'INVALID_TASK_ID',
      `task id "${id.slice(0, 64)}" is invalid: use a ULID or 1-128 of [A-Za-z0-9_.-] starting with a letter or digit`,
    );
  }
  if (/^\d+$/.test(id)) {
    throw new JobbersError('INVALID_TASK_ID', `task id "${id}" is invalid: it must not be all digits`);
  }
  if (reservedIds.has(id)) {
    throw new JobbersError(
      'INVALID_TASK_ID',
      `task id "${id}" is invalid: it names one of the queue's own keys (${[...reservedIds].join(', ')})`,
    );
  }
  return id;
}

/**
 * A workflow id as normalizeTaskId reads a task id, except a schedule's run id: the workflow's node
 * ids, `<id>.<key>`, must be task ids too (each at most 128 characters, checked per node).
 */
export function normalizeWorkflowId(id: string): string {
  const normalized = normalizeTaskId(id);
  if (scheduledJobIdPattern.test(normalized)) {
    throw new JobbersError(
      'INVALID_TASK_ID',
      `workflow id "${normalized.slice(0, 64)}" is invalid: a schedule's run id cannot name a workflow (its nodes are the tasks "<id>.<key>"); use a ULID or 1-128 of [A-Za-z0-9_.-] starting with a letter or digit`,
    );
  }
  return normalized;
}
