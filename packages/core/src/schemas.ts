// The task API's data contract as TypeBox schemas: what a client sends and receives (submissions,
// task views, pages, queue summaries). One definition gives the JSON Schema the manager validates
// with and documents, and, through Static<>, the TypeScript types core's own functions take and
// return (TaskView, TaskPage, SubmitResult, CancelResult...), so the two never drift.
import { type Static, Type } from 'typebox';
import { type CancellableState, cancellableStates } from './cancellation.js';
import { maxDelayMs, maxPriority } from './client.js';
import { transitions } from './lifecycle.js';
import { type BackoffPolicy, maxDedupKeyLength, maxTimerMs } from './task.js';
import { maxFanOut, maxWorkflowNodes } from './workflows.js';

/** Longest task id: a ULID or a client's own id of up to 128 characters (see core ids.ts). */
export const maxTaskIdLength = 128;

// Formats whose check lives in core, with its own error code (INVALID_TASK_ID, UNKNOWN_TASK_TYPE,
// INVALID_FILTER): route validation lets them through, and the document spells them out (openapi.ts).
/** A task id: the document adds its pattern. */
export const taskIdFormat = 'task-id';
/** A workflow id: a task id that is not a schedule's run; the document adds its pattern. */
export const workflowIdFormat = 'workflow-id';
/** A registered task type: the document adds the enum of their names. */
export const taskTypeFormat = 'task-type';
/** A queue some registered task runs on, as a filter: the document adds the enum of them. */
export const knownQueueFormat = 'known-queue';

const TaskId = (description: string, format: string = taskIdFormat) =>
  Type.String({ minLength: 1, maxLength: maxTaskIdLength, format, description });
const TaskType = (description: string) =>
  Type.String({ minLength: 1, maxLength: 200, format: taskTypeFormat, description });
const QueueName = (description: string) => Type.String({ minLength: 1, maxLength: 64, description });
const DateTime = (description: string) => Type.String({ format: 'date-time', description });

/** A JobbersError as every error response carries it. */
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

/** True when A and B are the same type. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Holds<T extends true> = T;
/** Backoff is the schema of task.ts's BackoffPolicy: this fails to compile when the two drift. */
export type BackoffSchemaIsBackoffPolicy = Holds<Same<Static<typeof Backoff>, BackoffPolicy>>;

export const SubmitBody = Type.Object(
  {
    task: TaskType('the task type'),
    params: Type.Optional(Type.Unknown({ description: "the task's params, valid against its schema" })),
    queue: Type.Optional(QueueName('a queue the task type allows; default: its own queue')),
    id: Type.Optional(
      TaskId(
        'your own id, to submit idempotently: a ULID, or 1-128 of [A-Za-z0-9_.-] starting with a letter or digit, not all digits and not a queue key name',
      ),
    ),
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
    dedupKey: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: maxDedupKeyLength,
        description: "the task's dedup key (default: the value of the param its definition names): see dedup",
      }),
    ),
    dedup: Type.Optional(
      Type.Union([Type.Literal('simple'), Type.Literal('throttle'), Type.Literal('debounce')], {
        description:
          'with a dedup key: simple drops this task while one with the key is pending; throttle keeps one per dedupWindow; debounce delays it by dedupWindow and a later one replaces it. Default: the definition, else simple',
      }),
    ),
    dedupWindow: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: maxTimerMs,
        description: 'milliseconds: the throttle or debounce window',
      }),
    ),
  },
  { additionalProperties: false },
);
export type SubmitBody = Static<typeof SubmitBody>;

export const taskStates = [
  'waiting',
  'prioritized',
  'delayed',
  'active',
  'completed',
  'failed',
  'waiting-children',
  'unknown',
] as const;
export const TaskState = Type.Unsafe<(typeof taskStates)[number]>({
  type: 'string',
  enum: [...taskStates],
  description: 'unknown: the job holds no state BullMQ names (being moved between states)',
});

export type TaskState = Static<typeof TaskState>;

/** A submitted task as POST /v1/tasks answers it. */
export const SubmittedTask = Type.Object({
  id: Type.String(),
  task: Type.String(),
  queue: Type.String(),
  state: TaskState,
  deduplicated: Type.Optional(
    Type.Literal(true, {
      description: 'the task was dropped by deduplication: id and state are those of the task kept',
    }),
  ),
});

/** A submission's outcome: created false when the id existed already (nothing was enqueued). */
export const SubmitResult = Type.Object({ ...SubmittedTask.properties, created: Type.Boolean() });
export type SubmitResult = Static<typeof SubmitResult>;

export const BatchBody = Type.Object(
  { tasks: Type.Array(SubmitBody, { minItems: 1, maxItems: 1000 }) },
  { additionalProperties: false },
);
export type BatchBody = Static<typeof BatchBody>;

export const BatchResult = Type.Object({ tasks: Type.Array(SubmitResult) });

export const TaskView = Type.Object({
  id: Type.String(),
  task: Type.String(),
  queue: Type.String(),
  state: TaskState,
  params: Type.Optional(Type.Unknown({ description: 'absent only when a listing left it out (omitted)' })),
  result: Type.Optional(Type.Unknown()),
  omitted: Type.Optional(
    Type.Array(Type.Unsafe<'params' | 'result'>({ type: 'string' }), {
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
  createdAt: DateTime('when it was submitted'),
  startedAt: Type.Optional(DateTime('when its last attempt started')),
  finishedAt: Type.Optional(DateTime('when it completed or failed for good')),
  lastHeartbeatAt: Type.Optional(DateTime('its last heartbeat')),
  traceId: Type.Optional(Type.String({ description: 'the W3C trace id of the submission, when traced' })),
  attemptsBy: Type.Optional(
    Type.Array(
      Type.Object({
        attempt: Type.Integer(),
        worker: Type.String({ description: 'the worker id, as in GET /v1/workers' }),
        startedAt: DateTime('when the attempt started'),
      }),
      { description: 'which worker ran each attempt (GET /v1/tasks/:id only)' },
    ),
  ),
  delay: Type.Optional(Type.Integer()),
  priority: Type.Optional(Type.Integer()),
  progress: Type.Optional(
    Type.Unknown({ description: 'the last ctx.progress(value) of the task: a number or an object' }),
  ),
  logs: Type.Optional(
    Type.Array(Type.String(), {
      description: 'the lines of ctx.log(line), oldest first: the last 1000 kept (GET /v1/tasks/:id only)',
    }),
  ),
});
export type TaskView = Static<typeof TaskView>;

export const TaskIdParams = Type.Object({ id: TaskId('the task id') });

const isoTime = (what: string) =>
  Type.String({
    maxLength: 64,
    format: 'date-time',
    description: `RFC 3339 date-time with a zone; ${what}`,
    examples: ['2025-01-31T12:00:00Z'],
  });

const TaskFilterFields = {
  queue: Type.Optional(Type.String({ minLength: 1, maxLength: 64, format: knownQueueFormat })),
  task: Type.Optional(TaskType('task type')),
  before: Type.Optional(isoTime('tasks submitted strictly before it')),
  after: Type.Optional(isoTime('tasks submitted at or after it; earlier than before when both are given')),
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
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    cursor: Type.Optional(
      Type.String({ minLength: 1, maxLength: 2048, description: 'nextCursor of the previous page' }),
    ),
    full: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'include params and results of any size (by default those stored above 16 KiB are left out)',
      }),
    ),
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
export type TaskPage = Static<typeof TaskPage>;

export const RetryIncidentsBody = Type.Object(
  {
    ...TaskFilterFields,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 })),
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
export type IncidentRetrySummary = Static<typeof RetryIncidentsResult>;

export const CancelResult = Type.Object({
  id: Type.String(),
  task: Type.String(),
  queue: Type.String(),
  cancelled: Type.Literal(true),
  previousState: Type.Unsafe<CancellableState>({ type: 'string', enum: [...cancellableStates] }),
});
export type CancelResult = Static<typeof CancelResult>;

export const QueueParams = Type.Object({ queue: QueueName('the queue name') });

export const QueueCounts = Type.Record(Type.String(), Type.Integer());

export const QueueSummary = Type.Object({
  name: Type.String(),
  paused: Type.Boolean(),
  counts: QueueCounts,
  available: Type.Record(Type.String(), Type.Union([Type.Integer(), Type.Null()]), {
    description:
      "available jobs per task type; null until the exporter's first count of the queue is done (unknown, not 0)",
  }),
  recounting: Type.Boolean({
    description:
      'a recount of the queue from BullMQ runs: `available` holds the last committed values meanwhile',
  }),
  tasks: Type.Array(Type.String()),
});

export const QueueList = Type.Object({ queues: Type.Array(QueueSummary) });

const nodeKey = Type.String({
  pattern: '^[A-Za-z0-9_-]{1,64}$',
  description: "the node's name in its workflow",
});

export const WorkflowNode = Type.Object(
  {
    key: nodeKey,
    // A node runs once, as itself: deduplication would put another task in its place.
    ...Type.Omit(SubmitBody, ['id', 'dedupKey', 'dedup', 'dedupWindow']).properties,
    dependsOn: Type.Optional(
      Type.Array(nodeKey, {
        maxItems: maxWorkflowNodes,
        description:
          'keys of the nodes that must complete first; their results reach this one as ctx.parents',
      }),
    ),
    fanOut: Type.Optional(
      Type.Object(
        {
          params: Type.Array(Type.Unknown(), {
            minItems: 1,
            maxItems: maxFanOut,
            description: 'one node per entry, its params: the node becomes <key>-0 .. <key>-<n-1>',
          }),
          queues: Type.Optional(
            Type.Array(QueueName('a queue the task allows'), {
              minItems: 1,
              description: "queues to spread the nodes over; absent: the task's own routing (and partitions)",
            }),
          ),
          strategy: Type.Optional(
            Type.Union([Type.Literal('round-robin'), Type.Literal('hash')], {
              description: 'round-robin (default), or hash of params[hashBy]: equal values share a queue',
            }),
          ),
          hashBy: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
        },
        { additionalProperties: false },
      ),
    ),
    onFailure: Type.Optional(
      Type.Union([Type.Literal('fail-workflow'), Type.Literal('continue')], {
        description:
          'when this node fails with no retry left: fail the workflow (default; nodes still waiting are skipped), or continue the branches that do not need it',
      }),
    ),
  },
  { additionalProperties: false },
);

export const WorkflowBody = Type.Object(
  {
    name: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$',
      description:
        "the kind of workflow: the metrics' workflow label (the first 100 names; later ones are 'other')",
    }),
    id: Type.Optional(
      TaskId(
        'your own id, to submit idempotently; node task ids are `<id>.<key>`, and each must be a task id of at most 128 characters',
        workflowIdFormat,
      ),
    ),
    nodes: Type.Array(WorkflowNode, { minItems: 1, maxItems: maxWorkflowNodes }),
  },
  { additionalProperties: false },
);
export type WorkflowBody = Static<typeof WorkflowBody>;

const workflowState = Type.Union([
  Type.Literal('running'),
  Type.Literal('completed'),
  Type.Literal('failed'),
  Type.Literal('cancelled'),
]);

export const WorkflowCreated = Type.Object({
  id: Type.String(),
  name: Type.String(),
  state: workflowState,
  submitted: Type.Array(SubmittedTask, { description: 'the nodes submitted now: those without parents' }),
});

export const WorkflowView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  state: workflowState,
  createdAt: Type.String({ format: 'date-time' }),
  finishedAt: Type.Optional(Type.String({ format: 'date-time' })),
  nodes: Type.Array(
    Type.Object({
      key: Type.String(),
      task: Type.String(),
      taskId: Type.String({ description: 'the node task (GET /v1/tasks/:id) once submitted' }),
      state: Type.Union(
        [
          Type.Literal('waiting'),
          Type.Literal('ready'),
          Type.Literal('submitted'),
          Type.Literal('completed'),
          Type.Literal('failed'),
          Type.Literal('skipped'),
          Type.Literal('cancelled'),
        ],
        { description: 'waiting: parents not all completed; submitted: a task (see its own state)' },
      ),
      dependsOn: Type.Array(Type.String()),
      onFailure: Type.Union([Type.Literal('fail-workflow'), Type.Literal('continue')]),
      taskState: Type.Optional(TaskState),
      attempts: Type.Optional(
        Type.Integer({ description: "the node task's attempts (GET of one workflow)" }),
      ),
      startedAt: Type.Optional(DateTime("when the node task's last attempt started")),
      finishedAt: Type.Optional(DateTime('when the node task completed or failed for good')),
    }),
  ),
  tasksOmitted: Type.Optional(
    Type.Boolean({ description: 'true when more than 1,000 nodes were submitted: read their tasks instead' }),
  ),
  frontier: Type.Array(Type.String(), { description: 'nodes submitted and not finished: where it is now' }),
  history: Type.Array(
    Type.Object({
      key: Type.String(),
      state: Type.Union([
        Type.Literal('completed'),
        Type.Literal('failed'),
        Type.Literal('skipped'),
        Type.Literal('cancelled'),
      ]),
      at: Type.String({ format: 'date-time' }),
    }),
    { description: 'every node that reached a final state, in order: where it has been' },
  ),
});

export type WorkflowView = Static<typeof WorkflowView>;

export const WorkflowIdParams = Type.Object({ id: TaskId('the workflow id') });

export const ListWorkflowsQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    name: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$',
        description: 'only workflows of this name',
      }),
    ),
    state: Type.Optional(workflowState),
    cursor: Type.Optional(
      Type.String({ pattern: '^w[0-9]{1,16}$', description: 'nextCursor of the previous page' }),
    ),
  },
  { additionalProperties: false },
);

export const WorkflowPage = Type.Object({
  workflows: Type.Array(WorkflowView),
  nextCursor: Type.Optional(Type.String()),
});

/** The most task ids one GET /v1/events may follow (its URL stays within a request line's bounds). */
const maxEventTaskIds = 100;

export const EventsQuery = Type.Object(
  {
    queue: Type.Optional(Type.String({ minLength: 1, maxLength: 64, format: knownQueueFormat })),
    task: Type.Optional(TaskType('only transitions of this task type')),
    id: Type.Optional(
      Type.Array(TaskId('a task id'), {
        minItems: 1,
        maxItems: maxEventTaskIds,
        description: `only transitions of these tasks: id=<id>, repeated for several (at most ${maxEventTaskIds})`,
      }),
    ),
    transition: Type.Optional(
      Type.Array(Type.Union(transitions.map((t) => Type.Literal(t))), {
        minItems: 1,
        maxItems: transitions.length,
        description:
          'only these transitions: transition=<name>, repeated for several (progress reports are left out)',
      }),
    ),
    lastEventId: Type.Optional(
      Type.String({
        maxLength: 64,
        pattern: '^[0-9]{1,20}-[0-9]{1,20}$',
        description:
          'resume after this event id (as the Last-Event-ID header, which wins when both are sent)',
      }),
    ),
  },
  { additionalProperties: false },
);

const NullableNumber = (description: string) => Type.Union([Type.Number(), Type.Null()], { description });
const Series = (description: string) => Type.Array(Type.Union([Type.Number(), Type.Null()]), { description });

export const StatsView = Type.Object({
  at: Type.Number({ description: "Redis's clock when read (ms since the epoch)" }),
  windowStart: Type.Number({
    description: 'the rates and quantiles cover windowStart..at (up to 5 minutes)',
  }),
  historyMinutes: Type.Integer(),
  tasks: Type.Array(
    Type.Object({
      queue: Type.String(),
      task: Type.String(),
      available: Type.Integer(),
      backlogAgeSeconds: Type.Number(),
      running: Type.Integer(),
      incidents: Type.Integer(),
      createdPerMinute: Type.Number(),
      completedPerMinute: Type.Number(),
      failedPerMinute: Type.Number(),
      timeInQueueP50Seconds: NullableNumber('null without activations in the window'),
      timeInQueueP95Seconds: NullableNumber('null without activations in the window'),
      executionP95Seconds: NullableNumber('null without finished attempts in the window'),
      retryRate: NullableNumber('retried attempts per activation; null without activations'),
      timeoutRate: NullableNumber('timed-out attempts per activation; null without activations'),
      history: Type.Object(
        {
          at: Type.Array(Type.Number()),
          available: Type.Array(Type.Integer()),
          running: Type.Array(Type.Integer()),
          createdPerMinute: Series('per point: the rate since the previous point'),
          completedPerMinute: Series('per point: the rate since the previous point'),
          timeInQueueP95Seconds: Series('per point: since the previous point'),
          executionP95Seconds: Series('per point: since the previous point'),
        },
        { description: 'one point per minute of the last hour, then now' },
      ),
    }),
  ),
});

export const WorkerList = Type.Object({
  workers: Type.Array(
    Type.Object({
      id: Type.String({ description: 'role@host:pid#suffix' }),
      role: Type.String(),
      host: Type.String(),
      pid: Type.Integer(),
      queues: Type.Array(Type.String()),
      concurrency: Type.Integer(),
      startedAt: DateTime('when the worker started'),
      lastSeenAt: DateTime('its last heartbeat; a worker unseen for 15 s is gone'),
      running: Type.Array(
        Type.Object({
          taskId: Type.String(),
          queue: Type.String(),
          task: Type.String(),
          attempt: Type.Integer(),
          startedAt: DateTime('when this attempt started'),
        }),
      ),
    }),
  ),
});

const scheduleTiming = {
  cron: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'a cron pattern: 5 fields (minute first) or 6 (seconds first); give cron or every',
      examples: ['0 3 * * *'],
    }),
  ),
  tz: Type.Optional(
    Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone of cron (default UTC)' }),
  ),
  every: Type.Optional(
    Type.Integer({
      minimum: 100,
      maximum: maxTimerMs,
      description: 'milliseconds between runs; give cron or every',
    }),
  ),
  params: Type.Optional(Type.Unknown({ description: "every run's params, valid against the task's schema" })),
  start: Type.Optional(Type.String({ maxLength: 64, format: 'date-time', description: 'no run before it' })),
  end: Type.Optional(Type.String({ maxLength: 64, format: 'date-time', description: 'no run after it' })),
};

const ScheduleId = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$',
  description: "the schedule's id",
});

export const ScheduleIdParams = Type.Object({ id: ScheduleId });

/** PUT /v1/schedules/:id: a schedule, its id in the path. */
export const SchedulePutBody = Type.Object(
  {
    task: TaskType('the task type it submits'),
    queue: Type.Optional(QueueName('a queue the task type allows; default: its own queue')),
    ...scheduleTiming,
    paused: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);
export type SchedulePutBody = Static<typeof SchedulePutBody>;

export const ScheduleBody = Type.Object(
  { id: ScheduleId, ...SchedulePutBody.properties },
  { additionalProperties: false },
);
export type ScheduleBody = Static<typeof ScheduleBody>;

export const ScheduleView = Type.Object({
  id: Type.String(),
  task: Type.String(),
  queue: Type.String(),
  ...scheduleTiming,
  params: Type.Unknown(),
  paused: Type.Boolean(),
  source: Type.Union([Type.Literal('definition'), Type.Literal('api')], {
    description: 'definition: from defineTask({schedule}), made by every manager at start',
  }),
  next: Type.Optional(DateTime('when the next run is due; absent while paused or past its end')),
});

export type ScheduleView = Static<typeof ScheduleView>;

export const ScheduleList = Type.Object({ schedules: Type.Array(ScheduleView) });
