// The lifecycle exporter's in-memory view of one queue: it applies BullMQ stream events to the
// per-job index and the available/running/incident sets, and gathers the resulting writes, netted,
// until the exporter commits them to Redis together with the stream position. A job activated and
// finished between two commits costs the commit almost nothing.

import { compareStreamIds } from './stream-ids.js';

/** n: added (not yet waiting), w: available, a: running, d: delayed or waiting for children, f: incident. */
export type JobState = 'n' | 'w' | 'a' | 'd' | 'f';

export interface StreamEvent {
  id: string;
  ms: number;
  event: string;
  jobId: string;
  /** `name` for `added`, `prev` for every other event. */
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
  /** null: not indexed (finished, removed, or never seen). */
  state: JobState | null;
  slots: TaskSlots;
  sinceMs: number;
}

/**
 * Pending writes to one sorted set (or the index hash): per member the score or hash value to
 * write, or null to remove it. Plain values rather than an object per write: these live until the
 * commit, long enough to be promoted out of V8's young generation.
 */
interface KeyWrites {
  key: string;
  members: Map<string, number | string | null>;
  /** Members Redis did not hold when their first write since the last commit was recorded. */
  fresh: Set<string>;
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
  sets: { w: KeyWrites; a: KeyWrites; f: KeyWrites };
  /** Counter cells by metric, then by the label after queue and task ('' for none). */
  cells: Map<string, Map<string, Cell>>;
  timeInQueue: Map<string, Histogram>;
}

export interface BookKeys {
  /** `<prefix>:<queue>:jobbers:` */
  jobbersPrefix: string;
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
}

export interface LookupResult {
  committed: Map<string, CommittedJob>;
  takenBy: Map<string, string>;
  yieldMarks: Map<string, number>;
  /** The only role that may have activated jobs in the batch: no `takenBy` needed. */
  soleRole?: string;
}

/** One variadic write of the commit (the commit script splits long ones). */
export interface CommitOp {
  command: string;
  key: string;
  args: string[];
}

export class LifecycleBook {
  private readonly known = new Map<string, Known>();
  /** Jobs that left the index since the last commit: forgotten once the commit is in. */
  private readonly forgotten: string[] = [];
  private readonly slotsByTask = new Map<string, TaskSlots>();
  private readonly index: KeyWrites;
  private readonly yieldsConsumed = new Map<string, number>();
  private readonly yieldsDropped = new Set<string>();
  private readonly tasksToAdd = new Set<string>();
  private pendingMembers = 0;
  private pendingCounts = 0;
  private committed = new Map<string, CommittedJob>();
  private takenBy = new Map<string, string>();
  private soleRole: string | undefined;
  private yieldMarks = new Map<string, number>();
  private readonly roleByWorker = new Map<string, string>();
  private readonly knownRoles: Set<string>;

  constructor(
    private readonly keys: BookKeys,
    roles: readonly string[],
    /** Beyond this many remembered jobs the memory is dropped after a commit (Redis still has it). */
    private readonly maxRememberedJobs = 500_000,
  ) {
    this.index = { key: `${keys.jobbersPrefix}idx`, members: new Map(), fresh: new Set() };
    this.knownRoles = new Set(roles);
  }

  /** Writes waiting for a commit (members, counters and yield marks). */
  get pendingWrites(): number {
    return this.pendingMembers + this.pendingCounts + this.yieldsConsumed.size + this.yieldsDropped.size;
  }

  /**
   * What must be read from Redis before `apply(events)`; who took activated jobs only when
   * `roleKnown` is false (more than one role may have taken them). A job added after
   * `countedUntil` is new: nothing in Redis can know it yet (the committed bookkeeping reflects only
   * events up to the position, and the last recount only the stream up to `countedUntil`).
   */
  lookupsFor(events: readonly StreamEvent[], roleKnown = false, countedUntil = '0-0'): LookupRequest {
    const unknown = new Set<string>();
    const addedHere = new Set<string>();
    const activated = new Set<string>();
    const yielded = new Set<string>();
    const activatedHere = new Set<string>();
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      // Queue-wide events (drained, paused, cleaned...) name no job.
      if (!e.jobId) continue;
      if (!this.known.has(e.jobId) && !addedHere.has(e.jobId)) {
        if (e.event === 'added' && e.extra && compareStreamIds(e.id, countedUntil) > 0)
          addedHere.add(e.jobId);
        else unknown.add(e.jobId);
      }
      if (e.event === 'active') {
        activatedHere.add(e.jobId);
        if (!roleKnown) activated.add(e.jobId);
      } else if (e.event === 'delayed') yielded.add(e.jobId);
      else if (
        e.event === 'waiting' &&
        (e.extra === 'active' || activatedHere.has(e.jobId) || this.known.get(e.jobId)?.state === 'a')
      )
        yielded.add(e.jobId);
    }
    return { unknownJobs: [...unknown], activatedJobs: [...activated], maybeYielded: [...yielded] };
  }

  /** Applies a batch in stream order; `lookups` answers `lookupsFor(events)`. Returns true if a recount is due. */
  apply(events: readonly StreamEvent[], lookups: LookupResult): boolean {
    this.committed = lookups.committed;
    this.takenBy = lookups.takenBy;
    this.soleRole = lookups.soleRole;
    this.yieldMarks = lookups.yieldMarks;
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
    return recount;
  }

  /** The netted writes since the last commit, as variadic commands. */
  commitOps(): CommitOp[] {
    const ops: CommitOp[] = [];
    const push = (command: string, key: string, args: string[]) => {
      if (args.length > 0) ops.push({ command, key, args });
    };
    push('SADD', `${this.keys.jobbersPrefix}tasks`, [...this.tasksToAdd]);
    const pushWrites = (writes: KeyWrites, isHash: boolean) => {
      if (writes.members.size === 0) return;
      const set: string[] = [];
      const remove: string[] = [];
      for (const [member, value] of writes.members) {
        if (value === null) {
          if (!writes.fresh.has(member)) remove.push(member);
        } else if (isHash) set.push(member, String(value));
        else set.push(String(value), member);
      }
      push(isHash ? 'HDEL' : 'ZREM', writes.key, remove);
      push(isHash ? 'HSET' : 'ZADD', writes.key, set);
    };
    for (const slots of this.slotsByTask.values())
      for (const writes of Object.values(slots.sets)) pushWrites(writes, false);
    pushWrites(this.index, true);
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
    for (const jobId of this.forgotten) if (this.known.get(jobId)?.state === null) this.known.delete(jobId);
    this.forgotten.length = 0;
    for (const slots of this.slotsByTask.values()) {
      for (const writes of Object.values(slots.sets)) {
        writes.members.clear();
        writes.fresh.clear();
      }
      for (const cells of slots.cells.values()) for (const cell of cells.values()) cell.by = 0;
      for (const h of slots.timeInQueue.values()) {
        h.buckets.fill(0);
        h.count = 0;
        h.sumSeconds = 0;
      }
    }
    this.index.members.clear();
    this.index.fresh.clear();
    this.yieldsConsumed.clear();
    this.yieldsDropped.clear();
    this.tasksToAdd.clear();
    this.pendingMembers = 0;
    this.pendingCounts = 0;
    if (this.known.size > this.maxRememberedJobs) this.known.clear();
  }

  private current(jobId: string): Known | undefined {
    const known = this.known.get(jobId);
    if (known) return known;
    const stored = this.committed.get(jobId);
    if (!stored?.task) return undefined;
    const entry: Known = { state: stored.state, slots: this.slotsOf(stored.task), sinceMs: stored.sinceMs };
    this.known.set(jobId, entry);
    if (stored.state === null) this.forgotten.push(jobId);
    return entry;
  }

  private slotsOf(task: string): TaskSlots {
    let slots = this.slotsByTask.get(task);
    if (slots) return slots;
    const jp = this.keys.jobbersPrefix;
    slots = {
      task,
      indexValue: { n: `n|${task}`, w: `w|${task}`, a: `a|${task}`, d: `d|${task}`, f: `f|${task}` },
      sets: {
        w: { key: `${jp}avail:${task}`, members: new Map(), fresh: new Set() },
        a: { key: `${jp}running:${task}`, members: new Map(), fresh: new Set() },
        f: { key: `${jp}incidents:${task}`, members: new Map(), fresh: new Set() },
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
    this.moveTo(e.jobId, known, this.slotsOf(e.extra), 'n', 0, false);
  }

  /** Returns true when it consumed the next event (the `stalled` that follows a lease expiry). */
  private waiting(e: StreamEvent, next: StreamEvent | undefined): boolean {
    const known = this.current(e.jobId);
    if (!known) return false;
    const { slots, state } = known;
    this.moveTo(e.jobId, known, slots, 'w', e.ms);
    let consumedNext = false;
    if (e.extra === 'active' || state === 'a') {
      if (next?.event === 'stalled' && next.jobId === e.jobId) {
        this.transition(slots, 'timed-out');
        this.count(slots, 'jobbers_tasks_timed_out_total', '');
        consumedNext = true;
      } else if (this.consumeYield(e.jobId)) this.transition(slots, 'yielded');
      else this.transition(slots, 'failed-with-retries');
    } else if (e.extra === 'delayed') this.transition(slots, 'backoff-recurred');
    else if (e.extra === 'failed' || state === 'f') this.transition(slots, 'incident-resolved');
    else this.transition(slots, 'created');
    return consumedNext;
  }

  private active(e: StreamEvent) {
    const known = this.current(e.jobId);
    if (!known) return;
    const { slots, state, sinceMs } = known;
    this.moveTo(e.jobId, known, slots, 'a', e.ms);
    const role = this.roleOf(e.jobId);
    this.transition(slots, 'activated');
    this.count(slots, 'jobbers_tasks_selected_total', role);
    if (state === 'w' && sinceMs > 0) this.observeTimeInQueue(slots, role, (e.ms - sinceMs) / 1000);
  }

  private delayed(e: StreamEvent) {
    const known = this.current(e.jobId);
    if (!known) return;
    const { slots, state } = known;
    this.moveTo(e.jobId, known, slots, 'd', 0);
    if (e.event === 'delayed' && state === 'a')
      this.transition(slots, this.consumeYield(e.jobId) ? 'yielded' : 'failed-with-backoff');
  }

  private finished(e: StreamEvent) {
    const known = this.current(e.jobId);
    if (!known) return;
    const { slots } = known;
    this.transition(slots, e.event);
    if (e.event === 'failed') {
      this.transition(slots, 'incident-raised');
      this.moveTo(e.jobId, known, slots, 'f', e.ms);
    } else this.moveTo(e.jobId, known, slots, null, 0);
  }

  private removed(e: StreamEvent) {
    const known = this.known.get(e.jobId) ?? this.indexedOnly(e.jobId);
    if (known?.state) {
      const { slots, state } = known;
      if (state === 'w' || state === 'd' || state === 'n') this.transition(slots, 'removed');
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
   * Leaves the job's previous set and enters the next one. A job that is not indexed is in no set,
   * but a replayed or out-of-band event may find it anywhere, so it leaves every set unless it was
   * just added.
   */
  private moveTo(
    jobId: string,
    known: Known | undefined,
    slots: TaskSlots,
    next: JobState | null,
    atMs: number,
    leaveUnknown = true,
  ) {
    const prev = known ? known.state : null;
    for (const state of setStates) {
      const mayBeIn = prev === state || (prev === null && leaveUnknown);
      if (next === state) this.write(slots.sets[state], jobId, atMs, mayBeIn);
      else if (mayBeIn) this.write(slots.sets[state], jobId, null, true);
    }
    this.write(this.index, jobId, next === null ? null : slots.indexValue[next], prev !== null);
    if (next === null) this.forgotten.push(jobId);
    if (known) {
      known.state = next;
      known.slots = slots;
      known.sinceMs = atMs;
    } else this.known.set(jobId, { state: next, slots, sinceMs: atMs });
  }

  private write(writes: KeyWrites, member: string, value: number | string | null, existed: boolean) {
    if (!writes.members.has(member)) {
      this.pendingMembers++;
      if (!existed) writes.fresh.add(member);
    }
    writes.members.set(member, value);
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

  private transition(slots: TaskSlots, name: string) {
    this.count(slots, 'jobbers_job_transitions_total', name);
  }

  /**
   * Adds one to `metric` with labels queue, task and, unless empty, `label`. Cells are found by
   * metric then label, so counting builds no string.
   */
  private count(slots: TaskSlots, metric: string, label: string) {
    let cells = slots.cells.get(metric);
    if (!cells) {
      cells = new Map();
      slots.cells.set(metric, cells);
    }
    let cell = cells.get(label);
    if (!cell) {
      cell = {
        key: this.keys.metricsPrefix + metric,
        field: label ? `${this.keys.queue}|${slots.task}|${label}` : `${this.keys.queue}|${slots.task}`,
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
        key: `${this.keys.metricsPrefix}jobbers_time_in_queue_seconds`,
        labels: `${this.keys.queue}|${slots.task}|${role}`,
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

const setStates = ['w', 'a', 'f'] as const;
