// What a call can fail with: the API's coded error, a task that failed or was cancelled while
// waited for, and a wait that ran out of time.

/** The API answered an error: `{error: {code, message, details?}}` with its HTTP status. */
export class JobbersApiError extends Error {
  override readonly name = 'JobbersApiError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** A task waited for by `result()` ended failed (an incident) or is gone (cancelled or cleaned). */
export class TaskFailedError extends Error {
  override readonly name = 'TaskFailedError';

  constructor(
    readonly id: string,
    readonly state: 'failed' | 'gone',
    readonly error?: { message: string; reason?: string },
  ) {
    super(
      state === 'failed'
        ? `task ${id} failed: ${error?.message ?? 'no message'}`
        : `task ${id} is gone (cancelled or cleaned) before it completed`,
    );
  }
}

/** A wait (`result()`) or one request ran out of time. */
export class JobbersTimeoutError extends Error {
  override readonly name = 'JobbersTimeoutError';
}
