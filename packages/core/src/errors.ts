// Typed errors with stable codes; the manager maps codes to HTTP statuses in one place.

export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'TASKS_MODULE_INVALID'
  | 'TASK_DEFINITION_INVALID'
  | 'UNKNOWN_TASK_TYPE'
  | 'UNKNOWN_QUEUE'
  | 'QUEUE_NOT_ALLOWED'
  | 'UNKNOWN_ROLE'
  | 'INVALID_PARAMS'
  | 'INVALID_TASK_ID'
  | 'INVALID_OPTIONS'
  | 'VALIDATION_FAILED'
  | 'INVALID_FILTER'
  | 'INVALID_CURSOR'
  | 'TASK_NOT_FOUND'
  | 'QUEUE_NOT_FOUND'
  | 'TASK_ID_CONFLICT'
  | 'TASK_STATE_CONFLICT'
  | 'INVALID_WORKFLOW'
  | 'WORKFLOW_NOT_FOUND'
  | 'INVALID_SCHEDULE'
  | 'SCHEDULE_NOT_FOUND'
  | 'SCHEDULE_EXISTS'
  | 'SCHEDULE_BUSY'
  | 'REDIS_UNAVAILABLE'
  | 'REDIS_VERSION_UNSUPPORTED';

export class JobbersError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'JobbersError';
    this.code = code;
    this.details = details;
  }
}

export function isJobbersError(error: unknown): error is JobbersError {
  return error instanceof JobbersError;
}

const redisDownMessages = [
  'ECONNREFUSED',
  'Connection is closed',
  'Command aborted due to connection close',
  "Stream isn't writeable",
  'ETIMEDOUT',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'Reached the max retries per request limit',
  'Command timed out',
  // A Redis Cluster losing a master: retries ran out before a replica was promoted.
  'Too many Cluster redirections',
  'Failed to refresh slots cache',
  'None of startup nodes is available',
  "Cluster isn't ready",
];

/**
 * Error replies of a Redis (or Cluster) that is up but cannot serve now: failover, resharding,
 * loading, out of memory (maxmemory under noeviction), a replica promoted away under us.
 */
const notServingReplies = [
  'CLUSTERDOWN ',
  'TRYAGAIN ',
  'LOADING ',
  'MASTERDOWN ',
  'OOM ',
  'READONLY ',
  // Redirections left over once the retries ran out (a slot map still settling after a failover).
  'MOVED ',
  'ASK ',
];

/** True when an error from ioredis means Redis cannot be reached (as opposed to a bad command). */
export function isRedisUnavailableError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  return (
    redisDownMessages.some((m) => error.message.includes(m) || code === m) ||
    notServingReplies.some((r) => error.message.startsWith(r))
  );
}
