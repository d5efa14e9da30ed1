// How the client learns a task's params and result types: from its definition (a Node service that
// can import the tasks module) or from a reference named by its type only (a browser, or any caller
// that must not load the tasks' code: `import type * as tasks from './tasks.js'`).
import type { TaskDefinition } from '@jobbers/core';

/** A task named by its type alone; carries no code. */
export interface TaskRef<P = unknown, R = unknown> {
  readonly name: string;
  /** Never set: holds the params and result types for the compiler. */
  readonly types?: { params: P; result: R };
}

/** A definition or a reference: what `submit` and `task` accept. */
export type TaskLike<P = unknown, R = unknown> = TaskDefinition<P, R> | TaskRef<P, R>;

export type ParamsOf<T> =
  T extends TaskDefinition<infer P, unknown> ? P : T extends TaskRef<infer P, unknown> ? P : never;

export type ResultOf<T> =
  T extends TaskDefinition<unknown, infer R>
    ? Awaited<R>
    : T extends TaskRef<unknown, infer R>
      ? Awaited<R>
      : never;

/**
 * A reference to a task by name, typed from its definition's type:
 * `const resize = taskRef<typeof tasks.resize>('images.resize')`.
 */
export function taskRef<T extends TaskLike>(name: string): TaskRef<ParamsOf<T>, ResultOf<T>> {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('taskRef needs a task name');
  return Object.freeze({ name });
}
