// The console's numbers: per queue and task type, the cluster-wide gauges and counters read from
// Redis now, and an hour of per-minute snapshots of them kept in one capped sorted set, so rates,
// quantiles and small charts need no Prometheus. Any manager may record the minute's snapshot; the
// first one to do so wins, and the set never holds more than `historyMinutes` + 2 snapshots.
import type { Redis } from 'ioredis';
import { isSlotPerQueue, jobbersKey, metricsKey } from '../keys.js';
import { scripts } from '../lua/registry.js';
import { execPerNode, type RoutedCommand } from '../redis.js';
import type { TaskRegistry } from '../task.js';
import { clusterMetrics, labelSeparator } from './definitions.js';
import { metricHashKey, queueMetricHashKey } from './store.js';

/** Minutes of history kept and charted. */
export const historyMinutes = 60;

/** One task type's numbers at one moment; counters are totals since the metrics began. */
export interface TaskSnapshot {
  available: number;
  /** When the oldest available job became available (ms), 0 when none is. */
  oldestAvailableMs: number;
  running: number;
  incidents: number;
  created: number;
  activated: number;
  completed: number;
  failed: number;
  retried: number;
  timedOut: number;
  /** Histogram bucket counts (not cumulative), the last past the highest bound. */
  timeInQueue: number[];
  execution: number[];
}

export interface StatsSnapshot {
  at: number;
  /** `queue|task` -> numbers */
  tasks: Record<string, TaskSnapshot>;
}

export function statsHistoryKey(prefix: string): string {
  return metricsKey(prefix, 'stats:minutes');
}

function emptyTask(bucketCount: number): TaskSnapshot {
  return {
    available: 0,
    oldestAvailableMs: 0,
    running: 0,
    incidents: 0,
    created: 0,
    activated: 0,
    completed: 0,
    failed: 0,
    retried: 0,
    timedOut: 0,
    timeInQueue: new Array(bucketCount).fill(0),
    execution: new Array(bucketCount).fill(0),
  };
}

function pairsOf(registry: TaskRegistry): [queue: string, task: string][] {
  const pairs: [string, string][] = [];
  for (const queue of registry.queues) {
    for (const d of registry.definitions)
      if (d.queue === queue || d.queues?.includes(queue)) pairs.push([queue, d.name]);
  }
  return pairs;
}

/** Reads every registered (queue, task type)'s numbers now, in one round trip. */
export async function readStatsSnapshot(
  redis: Redis,
  prefix: string,
  registry: TaskRegistry,
): Promise<StatsSnapshot> {
  const pairs = pairsOf(registry);
  const bucketCount = (clusterMetrics.timeInQueue.buckets?.length ?? 0) + 1;
  // Each queue's keys share a slot (a partitioned queue's: each partition's); on a Redis Cluster the
  // reads go in one pipeline per master, and a partitioned queue's numbers are summed here.
  const read: RoutedCommand[] = [];
  const at = await redisNowMs(redis);
  for (const [queue, task] of pairs) {
    for (const storage of registry.storageQueues(queue)) {
      const avail = jobbersKey(prefix, storage, `avail:${task}`);
      const running = jobbersKey(prefix, storage, `running:${task}`);
      const incidents = jobbersKey(prefix, storage, `incidents:${task}`);
      read.push(
        { key: avail, add: (p) => p.zcard(avail) },
        { key: avail, add: (p) => p.zrange(avail, 0, 0, 'WITHSCORES') },
        { key: avail, add: (p) => p.zcard(running) },
        { key: avail, add: (p) => p.zcard(incidents) },
      );
    }
  }
  const hashes = [
    clusterMetrics.transitions,
    clusterMetrics.tasksProcessed,
    clusterMetrics.tasksRetried,
    clusterMetrics.tasksTimedOut,
    clusterMetrics.timeInQueue,
    clusterMetrics.executionTime,
  ];
  // With a slot per queue each queue (and partition) keeps its own hash of each metric.
  const hashQueues = isSlotPerQueue(prefix)
    ? [...new Set([...registry.storageQueues(), ...registry.queues])]
    : [undefined];
  for (const metric of hashes) {
    for (const queue of hashQueues) {
      const key =
        queue === undefined ? metricHashKey(prefix, metric) : queueMetricHashKey(prefix, queue, metric);
      read.push({ key, add: (p) => p.hgetall(key) });
    }
  }
  const replies = await execPerNode(redis, read);
  const tasks: Record<string, TaskSnapshot> = {};
  let r = 0;
  for (const [queue, task] of pairs) {
    const t = emptyTask(bucketCount);
    for (const _storage of registry.storageQueues(queue)) {
      t.available += Number(replies[r++]);
      const oldest = replies[r++] as string[];
      if (oldest.length === 2) {
        const oldestMs = Number(oldest[1]);
        t.oldestAvailableMs = t.oldestAvailableMs === 0 ? oldestMs : Math.min(t.oldestAvailableMs, oldestMs);
      }
      t.running += Number(replies[r++]);
      t.incidents += Number(replies[r++]);
    }
    tasks[`${queue}${labelSeparator}${task}`] = t;
  }
  const [transitionsHashes, processed, retried, timedOut, timeInQueue, execution] = hashes.map(() =>
    Array.from({ length: hashQueues.length }, () => replies[r++] as Record<string, string> | undefined),
  ) as (Record<string, string> | undefined)[][];
  const each = (
    stored: (Record<string, string> | undefined)[],
    apply: (t: TaskSnapshot, rest: string[], value: number) => void,
  ) => {
    for (const [field, raw] of stored.flatMap((hash) => Object.entries(hash ?? {}))) {
      const [queue, task, ...rest] = field.split(labelSeparator);
      const t = tasks[`${queue}${labelSeparator}${task}`];
      if (t) apply(t, rest, Number(raw));
    }
  };
  each(transitionsHashes!, (t, [transition], value) => {
    if (transition === 'created') t.created += value;
    else if (transition === 'activated') t.activated += value;
  });
  each(processed!, (t, [status], value) => {
    if (status === 'completed') t.completed += value;
    else if (status === 'failed') t.failed += value;
  });
  each(retried!, (t, _rest, value) => {
    t.retried += value;
  });
  each(timedOut!, (t, _rest, value) => {
    t.timedOut += value;
  });
  const bucketsInto =
    (key: 'timeInQueue' | 'execution') => (t: TaskSnapshot, rest: string[], value: number) => {
      const part = rest[rest.length - 1] ?? '';
      if (part.startsWith('b')) t[key][Number(part.slice(1))]! += value;
    };
  each(timeInQueue!, bucketsInto('timeInQueue'));
  each(execution!, bucketsInto('execution'));
  return { at, tasks };
}

/** Records this minute's snapshot unless a manager already has; returns whether this call did. */
export async function recordStatsMinute(
  redis: Redis,
  prefix: string,
  registry: TaskRegistry,
): Promise<boolean> {
  const key = statsHistoryKey(prefix);
  const now = await redisNowMs(redis);
  const minute = now - (now % 60_000);
  if ((await redis.zcount(key, minute, minute)) > 0) return false;
  const snapshot = await readStatsSnapshot(redis, prefix, registry);
  const oldestKept = minute - (historyMinutes + 1) * 60_000;
  const added = await scripts.recordStatsMinute.run(
    redis,
    [key],
    [minute, JSON.stringify(snapshot), oldestKept, (historyMinutes + 5) * 60_000],
  );
  return added === 1;
}

async function redisNowMs(redis: Redis): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

export async function readStatsHistory(redis: Redis, prefix: string): Promise<StatsSnapshot[]> {
  const members = await redis.zrange(statsHistoryKey(prefix), 0, -1);
  return members.map((m) => JSON.parse(m) as StatsSnapshot);
}

/** Prometheus' histogram_quantile over bucket counts (not cumulative); null with no observations. */
export function bucketQuantile(
  q: number,
  counts: readonly number[],
  bounds: readonly number[],
): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let cumulative = 0;
  for (let i = 0; i < counts.length; i++) {
    const before = cumulative;
    cumulative += counts[i]!;
    if (cumulative >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1] ?? null;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      const upper = bounds[i]!;
      const inBucket = counts[i]!;
      return inBucket === 0 ? upper : lower + ((upper - lower) * (rank - before)) / inBucket;
    }
  }
  return bounds[bounds.length - 1] ?? null;
}

export interface TaskStats {
  queue: string;
  task: string;
  available: number;
  backlogAgeSeconds: number;
  running: number;
  incidents: number;
  /** Over the window: from `windowStart` to now. */
  createdPerMinute: number;
  completedPerMinute: number;
  failedPerMinute: number;
  timeInQueueP50Seconds: number | null;
  timeInQueueP95Seconds: number | null;
  executionP95Seconds: number | null;
  /** Retried attempts per activation, and attempts timed out per activation, over the window. */
  retryRate: number | null;
  timeoutRate: number | null;
  /** One point per minute snapshot, then now: for the charts. */
  history: {
    at: number[];
    available: number[];
    running: number[];
    createdPerMinute: (number | null)[];
    completedPerMinute: (number | null)[];
    timeInQueueP95Seconds: (number | null)[];
    executionP95Seconds: (number | null)[];
  };
}

export interface Stats {
  at: number;
  windowStart: number;
  historyMinutes: number;
  tasks: TaskStats[];
}

/** How far back the headline rates and quantiles look, when the history reaches that far. */
const windowMs = 5 * 60_000;

/** The numbers now, the window's rates and quantiles, and the history as chart series. */
export function summarizeStats(now: StatsSnapshot, history: StatsSnapshot[], registry: TaskRegistry): Stats {
  const points = [...history.filter((s) => s.at < now.at), now];
  const base = points.find((s) => s.at >= now.at - windowMs - 30_000) ?? now;
  const tiqBounds = clusterMetrics.timeInQueue.buckets ?? [];
  const execBounds = clusterMetrics.executionTime.buckets ?? [];
  const tasks: TaskStats[] = [];
  for (const [queue, task] of pairsOf(registry)) {
    const key = `${queue}${labelSeparator}${task}`;
    const current = now.tasks[key]!;
    const delta = (a: StatsSnapshot, b: StatsSnapshot) => diff(a.tasks[key], b.tasks[key], current);
    const window = delta(base, now);
    const minutes = Math.max((now.at - base.at) / 60_000, 1 / 60);
    const series: TaskStats['history'] = {
      at: [],
      available: [],
      running: [],
      createdPerMinute: [],
      completedPerMinute: [],
      timeInQueueP95Seconds: [],
      executionP95Seconds: [],
    };
    points.forEach((point, i) => {
      const t = point.tasks[key];
      series.at.push(point.at);
      series.available.push(t?.available ?? 0);
      series.running.push(t?.running ?? 0);
      const previous = points[i - 1];
      if (!previous) {
        series.createdPerMinute.push(null);
        series.completedPerMinute.push(null);
        series.timeInQueueP95Seconds.push(null);
        series.executionP95Seconds.push(null);
        return;
      }
      const step = delta(previous, point);
      const stepMinutes = Math.max((point.at - previous.at) / 60_000, 1 / 60);
      series.createdPerMinute.push(round(step.created / stepMinutes));
      series.completedPerMinute.push(round(step.completed / stepMinutes));
      series.timeInQueueP95Seconds.push(bucketQuantile(0.95, step.timeInQueue, tiqBounds));
      series.executionP95Seconds.push(bucketQuantile(0.95, step.execution, execBounds));
    });
    tasks.push({
      queue,
      task,
      available: current.available,
      backlogAgeSeconds:
        current.oldestAvailableMs > 0 ? Math.max(0, (now.at - current.oldestAvailableMs) / 1000) : 0,
      running: current.running,
      incidents: current.incidents,
      createdPerMinute: round(window.created / minutes),
      completedPerMinute: round(window.completed / minutes),
      failedPerMinute: round(window.failed / minutes),
      timeInQueueP50Seconds: bucketQuantile(0.5, window.timeInQueue, tiqBounds),
      timeInQueueP95Seconds: bucketQuantile(0.95, window.timeInQueue, tiqBounds),
      executionP95Seconds: bucketQuantile(0.95, window.execution, execBounds),
      retryRate: window.activated > 0 ? round(window.retried / window.activated) : null,
      timeoutRate: window.activated > 0 ? round(window.timedOut / window.activated) : null,
      history: series,
    });
  }
  return { at: now.at, windowStart: base.at, historyMinutes, tasks };
}

/** later - earlier per counter; a counter that went down (metrics reset) counts from zero. */
function diff(
  earlier: TaskSnapshot | undefined,
  later: TaskSnapshot | undefined,
  shape: TaskSnapshot,
): TaskSnapshot {
  const zero = emptyTask(shape.timeInQueue.length);
  const a = earlier ?? zero;
  const b = later ?? zero;
  const counter = (x: number, y: number) => (y >= x ? y - x : y);
  return {
    ...b,
    created: counter(a.created, b.created),
    activated: counter(a.activated, b.activated),
    completed: counter(a.completed, b.completed),
    failed: counter(a.failed, b.failed),
    retried: counter(a.retried, b.retried),
    timedOut: counter(a.timedOut, b.timedOut),
    timeInQueue: b.timeInQueue.map((v, i) => counter(a.timeInQueue[i] ?? 0, v)),
    execution: b.execution.map((v, i) => counter(a.execution[i] ?? 0, v)),
  };
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
