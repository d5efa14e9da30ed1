// Task ids: ULIDs generated here, or ids chosen by the client in advance.
import { monotonicFactory } from 'ulid';
import { queueOwnKeyNames } from './bullmq/keys.js';
import { JobbersError } from './errors.js';

const ulidPattern = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const clientIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

// A job's hash is `<prefix>:<queue>:<id>`: an id equal to one of the queue's own key names (`meta`,
// `wait`, `events`, ...) or to Jobbers' `jobbers` namespace would read or overwrite that key.
const reservedIds = new Set([...queueOwnKeyNames, 'jobbers']);

// One factory for the process: `ulid()` looks up its random source on every call, which showed up
// as a quarter of the manager's CPU in the REST bench; monotonic ids also sort within a millisecond.
const nextUlid = monotonicFactory();

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
