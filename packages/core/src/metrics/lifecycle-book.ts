// The lifecycle exporter's in-memory view of one queue: it applies BullMQ stream events to the
// per-job index and the available/running/incident sets, and remembers which jobs changed since the
// exporter last committed. A commit writes, for each of them, the difference between what Redis held
// then and where the job is now, together with the stream position. A job activated and finished
// between two commits costs the commit almost nothing, and applying an event writes nothing but the
// job's own entry.

import { isRateLimitedMove } from '../bullmq/rate-limited-move.js';
import type { Transition } from '../lifecycle.js';
import { clusterMetrics, labelField } from './definitions.js';
import { compareStreamIds } from './stream-ids.js';

/** The counters the book adds to: labels queue and task, and for some a third. */
type CountedMetric =
  | typeof clusterMetrics.transitions
  | typeof clusterMetrics.tasksSelected
  | typeof clusterMetrics.tasksTimedOut;

/**
 * Where the book holds a job. Stored in Redis as the first letter of the job's index entry
 * (`<bookkeeping prefix>idx`: job id -> `<letter>|<task>`), one letter because the index holds an
 * entry per job of a backlog; the exporter's lookup script and the recount's scripts read and write
 * the same letters, so they never change.
 */
export const jobState = {
  /** `n`: added, its `waiting` still to come. In no set. */
  added: 'n',
  /** `w`: available (BullMQ wait, paused or prioritized). In its task's `avail:` set, scored by since when. */
  available: 'w',
  /** `a`: running (BullMQ active). In its task's `running:` set, scored by since when. */
  running: 'a',
  /** `d`: delayed (a submit delay or a backoff) or waiting for children. In no set. */
  delayed: 'd',
  /** `f`: an incident (failed with no retries left). In its task's `incidents:` set. */
  incident: 'f',
  /**
   * `r`: delayed by a rate limit (the task's own, or an upstream's through ctx.rateLimited). In its
   * task's `ratelimited:` set, scored by when it may run again.
   */
  rateLimited: 'r',
} as const;

export type JobState = (typeof jobState)[keyof typeof jobState];

/** The states whose jobs sit in a sorted set of their task. */
type SetState =
  | typeof jobState.available
  | typeof jobState.running
  | typeof jobState.incident
  | typeof jobState.rateLimited;
const setStates: readonly SetState[] = [
  jobState.available,
  jobState.running,
  jobState.incident,
  jobState.rateLimited,
];

function isSetState(state: JobState | null): state is SetState {
  return (
    state === jobState.available ||
    state === jobState.running ||
    state === jobState.incident ||
    state === jobState.rateLimited
  );
}

export interface StreamEvent {
  id: string;
  ms: number;
  event: string;
  jobId: string;
  /**
   * `name` for `added`, `delay` (the time it is delayed to, ms) for `delayed`, `prev` for every other
   * event; for `progress`, its `data` where the reader keeps it (the lifecycle feed's), else ''
   * (BullMQ writes no prev there).
   */
  extra: string;
}

/** What Redis held for a job the book did not know: its index entry, else the job's own name. */
export interface CommittedJob {
  state: JobState | null;
  task: string | null;
  /** When it became available (state w), from the available set. */
  sinceMs: number;
}

interface Known {
  id: string;
  /** null: not indexed (finished, removed, or never seen). */
  state: JobState | null;
  slots: TaskSlots;
  sinceMs: number;
  /** The commit window in which the job last changed (-1: not since the book learned it). */
  window: number;
  /** Where Redis held the job when this window began: what the commit must undo. */
  baseState: JobState | null;
  baseSlots: TaskSlots;
  /**
   * Tasks whose sets may hold the job although the book had it in none: an event came for a job
   * the book thought finished or never saw in a set (a replay, or a change made outside BullMQ).
   */
  strays: TaskSlots[] | undefined;
  /** The lookupsFor call that last saw the job activated. */
  activatedIn: number;
}

/** One sorted set's writes while a commit is being built: (score, member) pairs and members. */
interface SetWrites {
  key: string;
  add: string[];
  remove: string[];
}

/** A counter increment waiting for the commit. */
interface Cell {
  key: string;
  field: string;
  by: number;
}

interface Histogram {
  key: string;
  labels: string;
  buckets: number[];
  count: number;
  sumSeconds: number;
}

/** Everything a task type's events write to, built once per task so the hot path builds no keys. */
interface TaskSlots {
  task: string;
  indexValue: Record<JobState, string>;
  sets: Record<SetState, SetWrites>;
  /** Counter cells by metric, then by the label after queue and task ('' for none). */
  cells: Map<string, Map<string, Cell>>;
  timeInQueue: Map<string, Histogram>;
}

export interface BookKeys {
  /** `<prefix>:<queue>:jobbers:` (yield marks live here) */
  jobbersPrefix: string;
  /**
   * Where the index, the sets and the task list live: the jobbers prefix (the default), or a
   * recount's prefix while the recount replays the stream onto what it counted.
   */
  bookkeepingPrefix?: string;
  /** `<prefix>:jobbers:metrics:` */
  metricsPrefix: string;
  queue: string;
  bucketBounds: readonly number[];
}

export interface LookupRequest {
  /** Jobs the book does not know: read their index entry (or name) before applying. */
  unknownJobs: string[];
  /** Activated jobs: read who took them, for the role label. */
  activatedJobs: string[];
  /** Jobs that may have been given back (yield marks). */
  maybeYielded: string[];
  /** Jobs moved to delayed: read the times a rate limit delayed them to. */
  delayedJobs: string[];
}

/** Redis's answer to a LookupRequest (the exporter's lookup script). */
export interface LookupResult {
  committed: Map<string, CommittedJob>;
  takenBy: Map<string, string>;
  yieldMarks: Map<string, number>;
  /** For each delayed job, the times a rate limit delayed it to (its hash's marks, as stored). */
  rateLimitMarks?: Map<string, string>;
}

/** What the exporter knows of a batch besides its events. */
export interface BatchContext {
  /** The only role that may have activated the batch's jobs: activations need no read of who took them. */
  soleRole?: string;
  /**
   * Where the last recount's count of BullMQ's lists ended: a job added after it is new, nothing in
   * Redis can know it yet (no lookup). '0-0' (the default) takes no job as new.
   */
  countedUntil?: string;
}

/**
 * A batch of events that the book will apply once Redis has answered what it must know first. The
 * only way to apply events: the answer always belongs to the batch that asked, and nothing changes
 * the book between the question and the answer.
 */
export interface PendingBatch {
  /** What must be read from Redis before the batch can be applied. */
  readonly request: LookupRequest;
  /** Applies the batch in stream order with Redis's answer to `request`. Returns true if a recount is due. */
  apply(answer: LookupResult): boolean;
}

/** One variadic write of the commit (the commit script splits long ones). */
export interface CommitOp {
  command: string;
  key: string;
  args: string[];
}

export class LifecycleBook {
  private readonly known = new Map<string, Known>();
  /** Jobs learned from Redis as not indexed: forgotten once the next commit is in. */
  private readonly forgotten: string[] = [];
  /** Jobs that changed in this commit window, each once. */
  private touched: Known[] = [];
  private window = 0;
  private lookupCalls = 0;
  /** Counts every change to the book, so a batch prepared before one is refused. */
  private changes = 0;
  private readonly slotsByTask = new Map<string, TaskSlots>();
  private readonly bookkeepingPrefix: string;
  private readonly indexKey: string;
  private readonly yieldsConsumed = new Map<string, number>();
  private readonly yieldsDropped = new Set<string>();
  private readonly tasksToAdd = new Set<string>();
  private pendingCounts = 0;
  private committed = new Map<string, CommittedJob>();
  private takenBy = new Map<string, string>();
  private soleRole: string | undefined;
  private yieldMarks = new Map<string, number>();
  private rateLimitMarks = new Map<string, string>();
  private readonly roleByWorker = new Map<string, string>();
  private readonly knownRoles: Set<string>;

  constructor(
    private readonly keys: BookKeys,
    roles: readonly string[],
    /**
     * Beyond this many remembered jobs, the longest remembered quarter is forgotten after a commit
     * (Redis still has it: a job met again is looked up).
     */
    private readonly maxRememberedJobs = 500_000,
  ) {
    this.bookkeepingPrefix = keys.bookkeepingPrefix ?? keys.jobbersPrefix;
    this.indexKey = `${this.bookkeepingPrefix}idx`;
    this.knownRoles = new Set(roles);
  }

  /** Writes waiting for a commit (changed jobs, counters and yield marks). */
  get pendingWrites(): number {
    return this.touched.length + this.pendingCounts + this.yieldsConsumed.size + this.yieldsDropped.size;
  }

  /**
   * Prepares a batch: what Redis must answer before the book applies these events (read and
   * answered by the caller, then applied with `apply` of the batch returned). Nothing else may
   * change the book in between (another batch, a commit, a forget): that batch's `apply` throws.
   */
  prepare(events: readonly StreamEvent[], context: BatchContext = {}): PendingBatch {
    const request = this.lookupsFor(events, context.soleRole !== undefined, context.countedUntil);
    const preparedAt = this.changes;
    let applied = false;
    return {
      request,
      apply: (answer) => {
        if (applied) throw new Error('this batch of events was applied already');
        if (this.changes !== preparedAt)
          throw new Error('the book changed since this batch was prepared: prepare it again');
        applied = true;
        return this.apply(events, answer, context.soleRole);
      },
    };
  }

  /**
   * What must be read from Redis before applying `events`; who took activated jobs only when
   * `roleKnown` is false (more than one role may have taken them). A job added after
   * `countedUntil` is new: nothing in Redis can know it yet (the committed bookkeeping reflects only
   * events up to the position, and the last recount only the stream up to `countedUntil`).
   */
  private lookupsFor(
    events: readonly StreamEvent[],
    roleKnown: boolean,
    countedUntil = '0-0',
  ): LookupRequest {
    const call = ++this.lookupCalls;
    // Sets are made only when needed: in a steady stream every job is known and none yields.
    let unknown: Set<string> | undefined;
    let addedHere: Set<string> | undefined;
    let activated: Set<string> | undefined;
    let yielded: Set<string> | undefined;
    let activatedUnknown: Set<string> | undefined;
    let delayed: Set<string> | undefined;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      const jobId = e.jobId;
      // Queue-wide events (drained, paused, cleaned...) name no job; events that move no job
      // (progress, deduplicated, duplicated...) need nothing read.
      if (!jobId || !appliedEvents.has(e.event)) continue;
      const known = this.known.get(jobId);
      if (!known && !addedHere?.has(jobId)) {
        if (e.event === 'added' && e.extra && compareStreamIds(e.id, countedUntil) > 0)
          addedHere = withMember(addedHere, jobId);
        else unknown = withMember(unknown, jobId);
      }
      if (e.event === 'active') {
        if (known) known.activatedIn = call;
        else activatedUnknown = withMember(activatedUnknown, jobId);
        if (!roleKnown) activated = withMember(activated, jobId);
      } else if (e.event === 'delayed') {
        yielded = withMember(yielded, jobId);
        delayed = withMember(delayed, jobId);
      } else if (
        e.event === 'waiting' &&
        (e.extra === 'active' ||
          (known
            ? known.activatedIn === call || known.state === jobState.running
            : activatedUnknown?.has(jobId)))
      )
        yielded = withMember(yielded, jobId);
    }
    return {
      unknownJobs: unknown ? [...unknown] : [],
      activatedJobs: activated ? [...activated] : [],
      maybeYielded: yielded ? [...yielded] : [],
      delayedJobs: delayed ? [...delayed] : [],
    };
  }

  /** Applies a batch in stream order; `lookups` answers `lookupsFor(events)`. Returns true if a recount is due. */
  private apply(
    events: readonly StreamEvent[],
    lookups: LookupResult,
    soleRole: string | undefined,
  ): boolean {
    this.changes++;
    this.committed = lookups.committed;
    this.takenBy = lookups.takenBy;
    this.soleRole = soleRole;
    this.yieldMarks = lookups.yieldMarks;
    this.rateLimitMarks = lookups.rateLimitMarks ?? new Map();
    let recount = false;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      switch (e.event) {
        case 'added':
          this.added(e);
          break;
        case 'waiting':
          if (this.waiting(e, events[i + 1])) i++;
          break;
        case 'active':
          this.active(e);
          break;
        case 'delayed':
        case 'waiting-children':
          this.delayed(e);
          break;
        case 'completed':
        case 'failed':
          this.finished(e);
          break;
        case 'removed':
          this.removed(e);
          break;
        case 'cleaned':
          recount = true;
          break;
      }
    }
    this.committed = new Map();
    this.takenBy = new Map();
    this.yieldMarks = new Map();
    this.rateLimitMarks = new Map();
    return recount;
  }

  /**
   * The writes since the last commit, as variadic commands: for each changed job, the removal from
   * wherever Redis held it and the write of where it is now, unless the two are the same.
   */
  commitOps(): CommitOp[] {
    const ops: CommitOp[] = [];
    const push = (command: string, key: string, args: string[]) => {
      if (args.length > 0) ops.push({ command, key, args });
    };
    push('SADD', `${this.bookkeepingPrefix}tasks`, [...this.tasksToAdd]);
    const indexSet: string[] = [];
    const indexRemove: string[] = [];
    for (let i = 0; i < this.touched.length; i++) {
      const job = this.touched[i]!;
      const { id, state, slots, baseState, baseSlots } = job;
      if (isSetState(baseState) && !(state === baseState && slots === baseSlots))
        baseSlots.sets[baseState].remove.push(id);
      if (job.strays)
        for (const stray of job.strays)
          for (const s of setStates)
            if (!(state === s && slots === stray) && !(baseState === s && baseSlots === stray))
              stray.sets[s].remove.push(id);
      if (isSetState(state)) slots.sets[state].add.push(String(job.sinceMs), id);
      if (state !== null) indexSet.push(id, slots.indexValue[state]);
      else if (baseState !== null) indexRemove.push(id);
    }
    for (const slots of this.slotsByTask.values()) {
      for (const s of setStates) {
        const writes = slots.sets[s];
        push('ZREM', writes.key, writes.remove);
        push('ZADD', writes.key, writes.add);
        writes.remove = [];
        writes.add = [];
      }
    }
    push('HDEL', this.indexKey, indexRemove);
    push('HSET', this.indexKey, indexSet);
    const yieldsKey = `${this.keys.jobbersPrefix}yields`;
    const consumed = [...this.yieldsConsumed].flatMap(([jobId, n]) => [jobId, String(n)]);
    push('JOBBERS_CONSUME_YIELDS', yieldsKey, consumed);
    push('HDEL', yieldsKey, [...this.yieldsDropped]);
    const increments = new Map<string, string[]>();
    const sums = new Map<string, string[]>();
    const add = (into: Map<string, string[]>, key: string, field: string, by: number) => {
      let args = into.get(key);
      if (!args) {
        args = [];
        into.set(key, args);
      }
      args.push(field, String(by));
    };
    for (const slots of this.slotsByTask.values()) {
      for (const cells of slots.cells.values())
        for (const cell of cells.values()) if (cell.by !== 0) add(increments, cell.key, cell.field, cell.by);
      for (const h of slots.timeInQueue.values()) {
        if (h.count === 0) continue;
        h.buckets.forEach((n, bucket) => {
          if (n !== 0) add(increments, h.key, `${h.labels}|b${bucket}`, n);
        });
        add(increments, h.key, `${h.labels}|count`, h.count);
        add(sums, h.key, `${h.labels}|sum`, h.sumSeconds);
      }
    }
    for (const [key, args] of increments) push('HINCRBY', key, args);
    for (const [key, args] of sums) push('HINCRBYFLOAT', key, args);
    return ops;
  }

  /** Called once the commit's ops are in Redis. */
  committedOps() {
    this.changes++;
    for (const jobId of this.forgotten) if (this.known.get(jobId)?.state === null) this.known.delete(jobId);
    this.forgotten.length = 0;
    for (let i = 0; i < this.touched.length; i++) {
      const job = this.touched[i]!;
      if (job.state === null) this.known.delete(job.id);
    }
    this.touched = [];
    this.window++;
    for (const slots of this.slotsByTask.values()) {
      for (const cells of slots.cells.values()) for (const cell of cells.values()) cell.by = 0;
      for (const h of slots.timeInQueue.values()) {
        h.buckets.fill(0);
        h.count = 0;
        h.sumSeconds = 0;
      }
    }
    this.yieldsConsumed.clear();
    this.yieldsDropped.clear();
    this.tasksToAdd.clear();
    this.pendingCounts = 0;
    if (this.known.size > this.maxRememberedJobs) this.forgetOldest();
  }

  /** The task type of a job the book knows now (every job of the batch just applied), else undefined. */
  taskOf(jobId: string): string | undefined {
    return this.known.get(jobId)?.slots.task;
  }

  /** Forgets these jobs (between commits only): they are looked up again when met. */
  forgetJobs(jobIds: readonly string[]) {
    this.changes++;
    for (const jobId of jobIds) this.known.delete(jobId);
  }

  /** Jobs the book remembers now. */
  get rememberedJobs(): number {
    return this.known.size;
  }

  /**
   * Forgets the jobs learned longest ago (a Map keeps insertion order) down to three quarters of the
   * bound, so a large queue costs one lookup per forgotten job met again, not a cold book.
   */
  private forgetOldest() {
    let excess = this.known.size - Math.floor((this.maxRememberedJobs * 3) / 4);
    for (const jobId of this.known.keys()) {
      if (excess-- <= 0) break;
      this.known.delete(jobId);
    }
  }

  private current(jobId: string): Known | undefined {
    const known = this.known.get(jobId);
    if (known) return known;
    const stored = this.committed.get(jobId);
    if (!stored?.task) return undefined;
    const slots = this.slotsOf(stored.task);
    const entry = newKnown(jobId, stored.state, slots, stored.sinceMs, -1);
    this.known.set(jobId, entry);
    if (stored.state === null) this.forgotten.push(jobId);
    return entry;
  }

  private slotsOf(task: string): TaskSlots {
    let slots = this.slotsByTask.get(task);
    if (slots) return slots;
    const jp = this.bookkeepingPrefix;
    slots = {
      task,
      indexValue: Object.fromEntries(
        Object.values(jobState).map((state) => [state, `${state}|${task}`]),
      ) as Record<JobState, string>,
      sets: {
        [jobState.available]: { key: `${jp}avail:${task}`, add: [], remove: [] },
        [jobState.running]: { key: `${jp}running:${task}`, add: [], remove: [] },
        [jobState.incident]: { key: `${jp}incidents:${task}`, add: [], remove: [] },
        [jobState.rateLimited]: { key: `${jp}ratelimited:${task}`, add: [], remove: [] },
      },
      cells: new Map(),
      timeInQueue: new Map(),
    };
    this.slotsByTask.set(task, slots);
    this.tasksToAdd.add(task);
    return slots;
  }

  private added(e: StreamEvent) {
    if (!e.extra) return;
    const known = this.current(e.jobId);
    if (known?.state) return;
    this.moveTo(e.jobId, known, this.slotsOf(e.extra), jobState.added, 0, false);
  }

  /** Returns true when it consumed the next event (the `stalled` that follows a lease expiry). */
  private waiting(e: StreamEvent, next: StreamEvent | undefined): boolean {
    const known = this.current(e.jobId);
    if (!known) return false;
    const { slots, state } = known;
    this.moveTo(e.jobId, known, slots, jobState.available, e.ms);
    let consumedNext = false;
    if (e.extra === 'active' || state === jobState.running) {
      if (next?.event === 'stalled' && next.jobId === e.jobId) {
        this.transition(slots, 'timed-out');
        this.count(slots, clusterMetrics.tasksTimedOut, '');
        consumedNext = true;
      } else if (this.consumeYield(e.jobId)) this.transition(slots, 'yielded');
      else this.transition(slots, 'failed-with-retries');
    } else if (state === jobState.rateLimited) this.transition(slots, 'rate-limit-ended');
    else if (e.extra === 'delayed') this.transition(slots, 'backoff-recurred');
    else if (e.extra === 'failed' || state === jobState.incident) this.transition(slots, 'incident-resolved');
    else this.transition(slots, 'created');
    return consumedNext;
  }

  private active(e: StreamEvent) {
    const known = this.current(e.jobId);
    if (!known) return;
    const { slots, state, sinceMs } = known;
    this.moveTo(e.jobId, known, slots, jobState.running, e.ms);
    const role = this.roleOf(e.jobId);
    this.transition(slots, 'activated');
    this.count(slots, clusterMetrics.tasksSelected, role);
    if (state === jobState.available && sinceMs > 0)
      this.observeTimeInQueue(slots, role, (e.ms - sinceMs) / 1000);
  }

  private delayed(e: StreamEvent) {
    const known = this.current(e.jobId);
    if (!known) return;
    const { slots, state } = known;
    if (e.event === 'delayed' && isRateLimitedMove(this.rateLimitMarks.get(e.jobId), e.extra)) {
      this.moveTo(e.jobId, known, slots, jobState.rateLimited, Number(e.extra));
      if (state === jobState.running) this.transition(slots, 'rate-limited');
      return;
    }
    this.moveTo(e.jobId, known, slots, jobState.delayed, 0);
    if (e.event === 'delayed' && state === jobState.running)
      this.transition(slots, this.consumeYield(e.jobId) ? 'yielded' : 'failed-with-backoff');
  }

  private finished(e: StreamEvent) {
    const known = this.current(e.jobId);
    if (!known) return;
    const { slots } = known;
    // Called for `completed` and `failed` only.
    this.transition(slots, e.event as 'completed' | 'failed');
    if (e.event === 'failed') {
      this.transition(slots, 'incident-raised');
      this.moveTo(e.jobId, known, slots, jobState.incident, e.ms);
    } else this.moveTo(e.jobId, known, slots, null, 0);
  }

  private removed(e: StreamEvent) {
    const known = this.known.get(e.jobId) ?? this.indexedOnly(e.jobId);
    if (known?.state) {
      const { slots, state } = known;
      if (
        state === jobState.available ||
        state === jobState.delayed ||
        state === jobState.added ||
        state === jobState.rateLimited
      )
        this.transition(slots, 'removed');
      this.moveTo(e.jobId, known, slots, null, 0);
    }
    this.yieldsConsumed.delete(e.jobId);
    this.yieldsDropped.add(e.jobId);
  }

  /** A removed job's hash is gone: only its index entry tells its task. */
  private indexedOnly(jobId: string): Known | undefined {
    const stored = this.committed.get(jobId);
    return stored?.state ? this.current(jobId) : undefined;
  }

  /**
   * Moves the job to `next` (its set follows at the commit). A job that is not indexed is in no set,
   * but a replayed or out-of-band event may find it anywhere, so the commit removes it from every
   * set of its task unless it was just added.
   */
  private moveTo(
    jobId: string,
    known: Known | undefined,
    slots: TaskSlots,
    next: JobState | null,
    atMs: number,
    leaveUnknown = true,
  ) {
    let job = known;
    if (!job) {
      job = newKnown(jobId, null, slots, 0, this.window);
      this.known.set(jobId, job);
      this.touched.push(job);
    } else if (job.window !== this.window) {
      job.window = this.window;
      job.baseState = job.state;
      job.baseSlots = job.slots;
      job.strays = undefined;
      this.touched.push(job);
    }
    if (job.state === null && leaveUnknown) {
      if (!job.strays) job.strays = [slots];
      else if (!job.strays.includes(slots)) job.strays.push(slots);
    }
    job.state = next;
    job.slots = slots;
    job.sinceMs = atMs;
  }

  private consumeYield(jobId: string): boolean {
    const used = this.yieldsConsumed.get(jobId) ?? 0;
    if ((this.yieldMarks.get(jobId) ?? 0) - used <= 0) return false;
    this.yieldsConsumed.set(jobId, used + 1);
    return true;
  }

  private roleOf(jobId: string): string {
    if (this.soleRole !== undefined) return this.knownRoles.has(this.soleRole) ? this.soleRole : 'unknown';
    const takenBy = this.takenBy.get(jobId) ?? '';
    let role = this.roleByWorker.get(takenBy);
    if (role === undefined) {
      const named = /^([^@]+)@/.exec(takenBy)?.[1];
      role = named && this.knownRoles.has(named) ? named : 'unknown';
      if (this.roleByWorker.size < 10_000) this.roleByWorker.set(takenBy, role);
    }
    return role;
  }

  private transition(slots: TaskSlots, name: Transition) {
    this.count(slots, clusterMetrics.transitions, name);
  }

  /**
   * Adds one to `metric` with labels queue, task and, unless empty, `label` (its third label). Cells
   * are found by metric then label, so counting builds no string.
   */
  private count(slots: TaskSlots, metric: CountedMetric, label: string) {
    let cells = slots.cells.get(metric.name);
    if (!cells) {
      cells = new Map();
      slots.cells.set(metric.name, cells);
    }
    let cell = cells.get(label);
    if (!cell) {
      cell = {
        key: this.keys.metricsPrefix + metric.name,
        field: labelField(label ? [this.keys.queue, slots.task, label] : [this.keys.queue, slots.task]),
        by: 0,
      };
      cells.set(label, cell);
    }
    if (cell.by === 0) this.pendingCounts++;
    cell.by++;
  }

  private observeTimeInQueue(slots: TaskSlots, role: string, seconds: number) {
    let h = slots.timeInQueue.get(role);
    const bounds = this.keys.bucketBounds;
    if (!h) {
      h = {
        key: this.keys.metricsPrefix + clusterMetrics.timeInQueue.name,
        labels: labelField([this.keys.queue, slots.task, role]),
        buckets: new Array(bounds.length + 1).fill(0),
        count: 0,
        sumSeconds: 0,
      };
      slots.timeInQueue.set(role, h);
    }
    const value = Math.max(0, seconds);
    let bucket = bounds.length;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        bucket = i;
        break;
      }
    }
    if (h.count === 0) this.pendingCounts++;
    h.buckets[bucket]!++;
    h.count++;
    h.sumSeconds += value;
  }
}

/**
 * The job events `apply` acts on. Others name a job without moving it: `progress`, `deduplicated` (a
 * submission dropped in favour of a kept job; a debounce's replaced job comes as its own `removed`),
 * `duplicated`, `stalled` (read with the `waiting` before it).
 */
const appliedEvents: ReadonlySet<string> = new Set([
  'added',
  'waiting',
  'active',
  'delayed',
  'waiting-children',
  'completed',
  'failed',
  'removed',
]);

/** `set` with `member` added; a new set when there was none. */
function withMember(set: Set<string> | undefined, member: string): Set<string> {
  const into = set ?? new Set<string>();
  into.add(member);
  return into;
}

function newKnown(
  id: string,
  state: JobState | null,
  slots: TaskSlots,
  sinceMs: number,
  window: number,
): Known {
  return {
    id,
    state,
    slots,
    sinceMs,
    window,
    baseState: state,
    baseSlots: slots,
    strays: undefined,
    activatedIn: 0,
  };
}
