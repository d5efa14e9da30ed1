// The lifecycle exporter's in-memory view of one queue: it applies BullMQ stream events to the
// per-job index and the available/running/incident sets, and gathers the resulting writes, netted,
// until the exporter commits them to Redis together with the stream position. A job activated and
// finished between two commits costs the commit almost nothing.

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
  task: string;
  sinceMs: number;
}

interface MemberWrite {
  /** Score or hash value to write, or null to remove the member. */
  value: number | string | null;
  /** Whether Redis held the member when the first write since the last commit was recorded. */
  existed: boolean;
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
}

/** One variadic write of the commit: `[command, key, ...args]`. */
export type CommitOp = [command: string, key: string, ...args: string[]];

const maxArgsPerOp = 1000;

export class LifecycleBook {
  private readonly known = new Map<string, Known>();
  private readonly writes = new Map<string, Map<string, MemberWrite>>();
  private readonly counts = new Map<string, Map<string, number>>();
  private readonly sums = new Map<string, Map<string, number>>();
  private readonly yieldsConsumed = new Map<string, number>();
  private readonly yieldsDropped = new Set<string>();
  private readonly tasksSeen = new Set<string>();
  private readonly tasksToAdd = new Set<string>();
  private pendingMembers = 0;
  private committed = new Map<string, CommittedJob>();
  private takenBy = new Map<string, string>();
  private yieldMarks = new Map<string, number>();
  private readonly idxKey: string;
  private readonly knownRoles: Set<string>;

  constructor(
    private readonly keys: BookKeys,
    roles: readonly string[],
    /** Beyond this many remembered jobs the memory is dropped after a commit (Redis still has it). */
    private readonly maxRememberedJobs = 500_000,
  ) {
    this.idxKey = `${keys.jobbersPrefix}idx`;
    this.knownRoles = new Set(roles);
  }

  /** Writes waiting for a commit (members, counters and yield marks). */
  get pendingWrites(): number {
    return this.pendingMembers + this.counts.size + this.yieldsConsumed.size + this.yieldsDropped.size;
  }

  /** What must be read from Redis before `apply(events)`. */
  lookupsFor(events: readonly StreamEvent[]): LookupRequest {
    const unknown = new Set<string>();
    const activated = new Set<string>();
    const yielded = new Set<string>();
    for (const e of events) {
      if (!this.known.has(e.jobId)) unknown.add(e.jobId);
      if (e.event === 'active') activated.add(e.jobId);
      else if (e.event === 'delayed') yielded.add(e.jobId);
      else if (
        e.event === 'waiting' &&
        (e.extra === 'active' || activated.has(e.jobId) || this.known.get(e.jobId)?.state === 'a')
      )
        yielded.add(e.jobId);
    }
    return { unknownJobs: [...unknown], activatedJobs: [...activated], maybeYielded: [...yielded] };
  }

  /** Applies a batch in stream order; `lookups` answers `lookupsFor(events)`. Returns true if a recount is due. */
  apply(events: readonly StreamEvent[], lookups: LookupResult): boolean {
    this.committed = lookups.committed;
    this.takenBy = lookups.takenBy;
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
    const push = (command: string, key: string, args: string[], per: number) => {
      for (let i = 0; i < args.length; i += maxArgsPerOp * per)
        ops.push([command, key, ...args.slice(i, i + maxArgsPerOp * per)]);
    };
    if (this.tasksToAdd.size > 0) push('SADD', `${this.keys.jobbersPrefix}tasks`, [...this.tasksToAdd], 1);
    for (const [key, members] of this.writes) {
      const isHash = key === this.idxKey;
      const set: string[] = [];
      const remove: string[] = [];
      for (const [member, write] of members) {
        if (write.value === null) {
          if (write.existed) remove.push(member);
        } else if (isHash) set.push(member, String(write.value));
        else set.push(String(write.value), member);
      }
      push(isHash ? 'HDEL' : 'ZREM', key, remove, 1);
      push(isHash ? 'HSET' : 'ZADD', key, set, 2);
    }
    const yieldsKey = `${this.keys.jobbersPrefix}yields`;
    const consumed = [...this.yieldsConsumed].flatMap(([jobId, n]) => [jobId, String(n)]);
    push('JOBBERS_CONSUME_YIELDS', yieldsKey, consumed, 2);
    push('HDEL', yieldsKey, [...this.yieldsDropped], 1);
    for (const [key, fields] of this.counts)
      push(
        'HINCRBY',
        key,
        [...fields].flatMap(([f, by]) => [f, String(by)]),
        2,
      );
    for (const [key, fields] of this.sums)
      push(
        'HINCRBYFLOAT',
        key,
        [...fields].flatMap(([f, by]) => [f, String(by)]),
        2,
      );
    return ops;
  }

  /** Called once the commit's ops are in Redis. */
  committedOps() {
    for (const [jobId, known] of this.known) if (known.state === null) this.known.delete(jobId);
    this.writes.clear();
    this.counts.clear();
    this.sums.clear();
    this.yieldsConsumed.clear();
    this.yieldsDropped.clear();
    this.tasksToAdd.clear();
    this.pendingMembers = 0;
    if (this.known.size > this.maxRememberedJobs) this.known.clear();
  }

  private current(jobId: string): Known | undefined {
    const known = this.known.get(jobId);
    if (known) return known;
    const stored = this.committed.get(jobId);
    if (!stored?.task) return undefined;
    const entry: Known = { state: stored.state, task: stored.task, sinceMs: stored.sinceMs };
    this.known.set(jobId, entry);
    return entry;
  }

  private added(e: StreamEvent) {
    if (!e.extra) return;
    this.noteTask(e.extra);
    const known = this.current(e.jobId);
    if (known?.state) return;
    this.moveTo(e.jobId, known, e.extra, 'n', 0, false);
  }

  /** Returns true when it consumed the next event (the `stalled` that follows a lease expiry). */
  private waiting(e: StreamEvent, next: StreamEvent | undefined): boolean {
    const known = this.current(e.jobId);
    if (!known) return false;
    const { task, state } = known;
    this.noteTask(task);
    this.moveTo(e.jobId, known, task, 'w', e.ms);
    let consumedNext = false;
    if (e.extra === 'active' || state === 'a') {
      if (next?.event === 'stalled' && next.jobId === e.jobId) {
        this.transition(task, 'timed-out');
        this.count('jobbers_tasks_timed_out_total', `${this.keys.queue}|${task}`);
        consumedNext = true;
      } else if (this.consumeYield(e.jobId)) this.transition(task, 'yielded');
      else this.transition(task, 'failed-with-retries');
    } else if (e.extra === 'delayed') this.transition(task, 'backoff-recurred');
    else if (e.extra === 'failed' || state === 'f') this.transition(task, 'incident-resolved');
    else this.transition(task, 'created');
    return consumedNext;
  }

  private active(e: StreamEvent) {
    const known = this.current(e.jobId);
    if (!known) return;
    const { task, state, sinceMs } = known;
    this.moveTo(e.jobId, known, task, 'a', e.ms);
    const role = this.roleOf(e.jobId);
    this.transition(task, 'activated');
    this.count('jobbers_tasks_selected_total', `${this.keys.queue}|${task}|${role}`);
    if (state === 'w' && sinceMs > 0)
      this.observe(
        'jobbers_time_in_queue_seconds',
        `${this.keys.queue}|${task}|${role}`,
        (e.ms - sinceMs) / 1000,
      );
  }

  private delayed(e: StreamEvent) {
    const known = this.current(e.jobId);
    if (!known) return;
    const { task, state } = known;
    this.moveTo(e.jobId, known, task, 'd', 0);
    if (e.event === 'delayed' && state === 'a')
      this.transition(task, this.consumeYield(e.jobId) ? 'yielded' : 'failed-with-backoff');
  }

  private finished(e: StreamEvent) {
    const known = this.current(e.jobId);
    if (!known) return;
    const { task } = known;
    this.transition(task, e.event);
    if (e.event === 'failed') {
      this.transition(task, 'incident-raised');
      this.moveTo(e.jobId, known, task, 'f', e.ms);
    } else this.moveTo(e.jobId, known, task, null, 0);
  }

  private removed(e: StreamEvent) {
    const known = this.known.get(e.jobId) ?? this.indexedOnly(e.jobId);
    if (known?.state) {
      const { task, state } = known;
      if (state === 'w' || state === 'd' || state === 'n') this.transition(task, 'removed');
      this.moveTo(e.jobId, known, task, null, 0);
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
    task: string,
    next: JobState | null,
    atMs: number,
    leaveUnknown = true,
  ) {
    const prev = known ? known.state : null;
    const jp = this.keys.jobbersPrefix;
    const sets: [JobState, string][] = [
      ['w', `${jp}avail:${task}`],
      ['a', `${jp}running:${task}`],
      ['f', `${jp}incidents:${task}`],
    ];
    for (const [state, key] of sets) {
      const mayBeIn = prev === state || (prev === null && leaveUnknown);
      if (next === state) this.write(key, jobId, atMs, mayBeIn);
      else if (mayBeIn) this.write(key, jobId, null, true);
    }
    this.write(this.idxKey, jobId, next === null ? null : `${next}|${task}`, prev !== null);
    if (known) {
      known.state = next;
      known.task = task;
      known.sinceMs = atMs;
    } else this.known.set(jobId, { state: next, task, sinceMs: atMs });
  }

  private write(key: string, member: string, value: number | string | null, existed: boolean) {
    let members = this.writes.get(key);
    if (!members) {
      members = new Map();
      this.writes.set(key, members);
    }
    const write = members.get(member);
    if (write) write.value = value;
    else {
      members.set(member, { value, existed });
      this.pendingMembers++;
    }
  }

  private consumeYield(jobId: string): boolean {
    const used = this.yieldsConsumed.get(jobId) ?? 0;
    if ((this.yieldMarks.get(jobId) ?? 0) - used <= 0) return false;
    this.yieldsConsumed.set(jobId, used + 1);
    return true;
  }

  private roleOf(jobId: string): string {
    const role = /^([^@]+)@/.exec(this.takenBy.get(jobId) ?? '')?.[1];
    return role && this.knownRoles.has(role) ? role : 'unknown';
  }

  private noteTask(task: string) {
    if (this.tasksSeen.has(task)) return;
    this.tasksSeen.add(task);
    this.tasksToAdd.add(task);
  }

  private transition(task: string, name: string) {
    this.count('jobbers_job_transitions_total', `${this.keys.queue}|${task}|${name}`);
  }

  private count(metric: string, field: string, by = 1) {
    bump(this.counts, this.keys.metricsPrefix + metric, field, by);
  }

  private observe(metric: string, labels: string, seconds: number) {
    const value = Math.max(0, seconds);
    const bounds = this.keys.bucketBounds;
    let bucket = bounds.findIndex((bound) => value <= bound);
    if (bucket === -1) bucket = bounds.length;
    const key = this.keys.metricsPrefix + metric;
    bump(this.counts, key, `${labels}|b${bucket}`, 1);
    bump(this.counts, key, `${labels}|count`, 1);
    bump(this.sums, key, `${labels}|sum`, value);
  }
}

function bump(into: Map<string, Map<string, number>>, key: string, field: string, by: number) {
  let fields = into.get(key);
  if (!fields) {
    fields = new Map();
    into.set(key, fields);
  }
  fields.set(field, (fields.get(field) ?? 0) + by);
}
