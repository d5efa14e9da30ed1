// Route schemas: TypeBox gives the JSON schema Fastify validates with and the TypeScript types.
import { type Static, Type } from '@fastify/type-provider-typebox';
import { maxDelayMs, maxPriority, maxTimerMs } from '@jobbers/core';

/** Longest task id: a ULID or a client's own id of up to 128 characters (see core ids.ts). */
export const maxTaskIdLength = 128;

export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    details: Type.Optional(Type.Unknown()),
  }),
});

export const Backoff = Type.Object(
  {
    type: Type.Union([Type.Literal('fixed'), Type.Literal('exponential')]),
    delay: Type.Integer({ minimum: 0, maximum: maxTimerMs }),
    jitter: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  },
  { additionalProperties: false },
);

export const SubmitBody = Type.Object(
  {
    task: Type.String({ minLength: 1, maxLength: 200 }),
    params: Type.Optional(Type.Unknown()),
    queue: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    id: Type.Optional(Type.String({ minLength: 1, maxLength: maxTaskIdLength })),
    delay: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: maxDelayMs,
        description: 'milliseconds before the task becomes available (at most 365 days)',
      }),
    ),
    priority: Type.Optional(
      Type.Integer({ minimum: 0, maximum: maxPriority, description: '1 is the highest; 0 none' }),
    ),
    retries: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 100, description: 'retries after the first attempt' }),
    ),
    timeout: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: maxTimerMs,
        description: 'execution timeout in milliseconds (at most 2^31-1, what a timer holds)',
      }),
    ),
    backoff: Type.Optional(Backoff),
  },
  { additionalProperties: false },
);
export type SubmitBody = Static<typeof SubmitBody>;

export const TaskState = Type.String({
  description: 'waiting | prioritized | delayed | active | completed | failed | waiting-children',
});

export const SubmitResult = Type.Object({
  id: Type.String(),
  task: Type.String(),
  queue: Type.String(),
  state: TaskState,
});

export const BatchBody = Type.Object(
  { tasks: Type.Array(SubmitBody, { minItems: 1, maxItems: 1000 }) },
  { additionalProperties: false },
);
export type BatchBody = Static<typeof BatchBody>;

export const BatchResult = Type.Object({
  tasks: Type.Array(Type.Object({ ...SubmitResult.properties, created: Type.Boolean() })),
});

export const TaskView = Type.Object({
  id: Type.String(),
  task: Type.String(),
  queue: Type.String(),
  state: TaskState,
  params: Type.Optional(Type.Unknown({ description: 'absent only when a listing left it out (omitted)' })),
  result: Type.Optional(Type.Unknown()),
  omitted: Type.Optional(
    Type.Array(Type.String(), {
      description:
        'in a listing: params and/or result, left out for their size; GET the task or list with full=true',
    }),
  ),
  error: Type.Optional(
    Type.Object({
      message: Type.String(),
      reason: Type.Optional(Type.String()),
      stack: Type.Optional(Type.Array(Type.String())),
    }),
  ),
  attempts: Type.Integer(),
  retries: Type.Integer(),
  createdAt: Type.String(),
  startedAt: Type.Optional(Type.String()),
  finishedAt: Type.Optional(Type.String()),
  lastHeartbeatAt: Type.Optional(Type.String()),
  delay: Type.Optional(Type.Integer()),
  priority: Type.Optional(Type.Integer()),
});

export const TaskIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: maxTaskIdLength }) });

const isoTime = (what: string) =>
  Type.String({ maxLength: 64, description: `ISO 8601 time; ${what}`, examples: ['2025-01-31T12:00:00Z'] });

const TaskFilterFields = {
  queue: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  task: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'task type' })),
  before: Type.Optional(isoTime('tasks submitted strictly before it')),
  after: Type.Optional(isoTime('tasks submitted at or after it')),
};

export const ListTasksQuery = Type.Object(
  {
    ...TaskFilterFields,
    state: Type.Optional(
      Type.Union(
        [
          Type.Literal('waiting'),
          Type.Literal('prioritized'),
          Type.Literal('delayed'),
          Type.Literal('active'),
          Type.Literal('completed'),
          Type.Literal('failed'),
        ],
        { description: 'absent: every state, in the order listed' },
      ),
    ),
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    cursor: Type.Optional(
      Type.String({ minLength: 1, maxLength: 2048, description: 'nextCursor of the previous page' }),
    ),
    full: Type.Boolean({
      default: false,
      description:
        'include params and results of any size (by default those stored above 16 KiB are left out)',
    }),
  },
  { additionalProperties: false },
);
export type ListTasksQuery = Static<typeof ListTasksQuery>;

export const TaskPage = Type.Object({
  tasks: Type.Array(TaskView),
  nextCursor: Type.Optional(
    Type.String({ description: 'absent after the last page; a page may be short and still have one' }),
  ),
});

export const RetryIncidentsBody = Type.Object(
  {
    ...TaskFilterFields,
    limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
    all: Type.Optional(
      Type.Boolean({ description: 'true to retry every incident; without it, name at least one filter' }),
    ),
  },
  { additionalProperties: false },
);
export type RetryIncidentsBody = Static<typeof RetryIncidentsBody>;

export const RetryIncidentsResult = Type.Object({
  retried: Type.Integer({ description: 'incidents moved back to waiting by this call' }),
  matched: Type.Integer({ description: 'incidents that matched the filter, at most limit' }),
  more: Type.Boolean({ description: 'the limit stopped the run; more matching incidents may remain' }),
});

export const CancelResult = Type.Object({
  id: Type.String(),
  task: Type.String(),
  queue: Type.String(),
  cancelled: Type.Literal(true),
  previousState: Type.String({ description: 'waiting | prioritized | delayed' }),
});
export const QueueParams = Type.Object({ queue: Type.String({ minLength: 1, maxLength: 64 }) });

export const QueueCounts = Type.Record(Type.String(), Type.Integer());

export const QueueSummary = Type.Object({
  name: Type.String(),
  paused: Type.Boolean(),
  counts: QueueCounts,
  available: Type.Record(Type.String(), Type.Integer(), { description: 'available jobs per task type' }),
  tasks: Type.Array(Type.String()),
});

export const QueueList = Type.Object({ queues: Type.Array(QueueSummary) });
