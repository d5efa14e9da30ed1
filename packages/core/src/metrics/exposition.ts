// Renders the cluster-wide metrics from Redis in the Prometheus text format. Every manager renders
// the same numbers; the documented PromQL takes `max by` over instances, so two managers never
// double count. Label values for `task` are bounded by the registered types (others: `other`).
import type { Redis } from 'ioredis';
import {
  type JobCountState,
  jobCountReads,
  jobCountReplies,
  jobCountsFromReplies,
} from '../bullmq/job-counts.js';
import { isSlotPerQueue, jobbersKey, queueKey } from '../keys.js';
import { transitions } from '../lifecycle.js';
import { scripts } from '../lua/registry.js';
import { execPerNode, type RoutedCommand } from '../redis.js';
import type { TaskRegistry } from '../task.js';
import { clusterMetrics, labelSeparator, type MetricDefinition } from './definitions.js';
import { exporterStateKey } from './exporter.js';
import { recountProgressKey } from './recount.js';
import { metricHashKey, queueMetricHashKey } from './store.js';

/** The states of jobbers_jobs, in the order they are rendered. */
const jobsGaugeStates: readonly JobCountState[] = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'paused',
  'completed',
  'failed',
];

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(names: readonly string[], values: readonly string[], extra = ''): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`);
  if (extra) parts.push(extra);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

function header(metric: MetricDefinition): string {
  return `# HELP ${metric.name} ${metric.help}\n# TYPE ${metric.name} ${metric.type}\n`;
}

function formatNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : '-Inf';
}

export interface ExpositionOptions {
  redis: Redis;
  prefix: string;
  registry: TaskRegistry;
  roles?: readonly string[];
  now?: number;
  /**
   * Adds a `partition` label (the partition's index; empty for a queue that is not partitioned) to
   * the gauges of jobs in Redis: jobbers_jobs_available, its age, jobbers_jobs_running,
   * jobbers_incidents and jobbers_jobs. Each partitioned queue then has that many times the series.
   * Counters and histograms keep the queue alone. JOBBERS_METRICS_PARTITION_LABEL on the manager.
   * @default false
   */
  partitionLabel?: boolean;
}

/** Maps a stored task label to a bounded one. */
function boundTask(registry: TaskRegistry, task: string): string {
  return registry.find(task) ? task : 'other';
}

function tasksOf(registry: TaskRegistry, queue: string): string[] {
  return registry.definitions
    .filter((d) => d.queue === queue || d.queues?.includes(queue))
    .map((d) => d.name);
}

export async function renderClusterMetrics(options: ExpositionOptions): Promise<string> {
  const { redis, prefix, registry } = options;
  const now = options.now ?? Date.now();
  const queues = registry.queues;
  // Series are labelled with the queue; a partitioned queue's partitions are read one by one and
  // summed under its name (ages and lags: the largest).
  const storage = registry.storageQueues();
  const labelOf = (queue: string) => registry.queueOf(queue);
  // Each queue's keys share a slot; on a Redis Cluster the queues' slots spread over the masters,
  // so every read goes in one pipeline per master, and the replies are merged here.
  const gaugeRead: RoutedCommand[] = [];
  const extraTasks = new Map<string, string[]>();
  for (const queue of storage) {
    const tasksKey = jobbersKey(prefix, queue, 'tasks');
    gaugeRead.push(
      { key: tasksKey, add: (p) => p.smembers(tasksKey) },
      { key: tasksKey, add: (p) => p.hexists(exporterStateKey(prefix, queue), 'pos') },
      { key: tasksKey, add: (p) => p.exists(recountProgressKey(prefix, queue)) },
    );
  }
  const states = await execPerNode(redis, gaugeRead);
  const taskSets = storage.map((_, i) => (states[3 * i] as string[]) ?? []);
  // Before the first count of a queue (of every partition) finishes nothing is known: its gauges
  // are absent, not 0.
  const uncounted = new Set(storage.filter((_, i) => states[3 * i + 1] !== 1).map(labelOf));
  const counted = storage.filter((queue) => !uncounted.has(labelOf(queue)));
  const recounting = new Map<string, number>();
  storage.forEach((queue, i) => {
    const label = labelOf(queue);
    recounting.set(label, Math.max(recounting.get(label) ?? 0, Number(states[3 * i + 2])));
    extraTasks.set(
      queue,
      taskSets[i]!.filter((t) => !tasksOf(registry, label).includes(t)),
    );
  });

  scripts.oldestUnappliedEvent.define(redis);
  const read: RoutedCommand[] = [];
  const gaugeRows: { queue: string; task: string; stored: string; part: string[] }[] = [];
  const partOf = (queue: string) =>
    options.partitionLabel ? [String(registry.partitionIndexOf(queue) ?? '')] : [];
  for (const queue of counted) {
    for (const stored of [...tasksOf(registry, labelOf(queue)), ...extraTasks.get(queue)!]) {
      gaugeRows.push({
        queue: labelOf(queue),
        task: boundTask(registry, stored),
        stored,
        part: partOf(queue),
      });
      const jp = jobbersKey(prefix, queue, '');
      const avail = `${jp}avail:${stored}`;
      read.push(
        { key: avail, add: (p) => p.zcard(avail) },
        { key: avail, add: (p) => p.zrange(avail, 0, 0, 'WITHSCORES') },
        { key: avail, add: (p) => p.zcard(`${jp}running:${stored}`) },
        { key: avail, add: (p) => p.zcard(`${jp}incidents:${stored}`) },
        { key: avail, add: (p) => p.zcard(`${jp}ratelimited:${stored}`) },
      );
    }
  }
  for (const queue of storage) {
    read.push(...jobCountReads(prefix, queue));
    // The exporter's lag: how long the oldest event it has not yet applied has waited.
    const stateKey = exporterStateKey(prefix, queue);
    const eventsKey = `${queueKey(prefix, queue)}:events`;
    read.push({
      key: stateKey,
      add: (p) => scripts.oldestUnappliedEvent.queue(p, [stateKey, eventsKey], []),
    });
  }
  const hashMetrics = [
    clusterMetrics.transitions,
    clusterMetrics.tasksSelected,
    clusterMetrics.timeInQueue,
    clusterMetrics.tasksProcessed,
    clusterMetrics.executionTime,
    clusterMetrics.endToEndLatency,
    clusterMetrics.tasksRetried,
    clusterMetrics.tasksTimedOut,
    clusterMetrics.completionsRejected,
    clusterMetrics.cleanerRemoved,
    clusterMetrics.workflowsStarted,
    clusterMetrics.workflowsFinished,
    clusterMetrics.workflowDuration,
    clusterMetrics.scheduleRuns,
    clusterMetrics.scheduleLateness,
  ];
  // With a slot per queue each queue keeps its own hash of each metric; they are merged below.
  // The exporter writes a partition's series in the partition's slot; workers and the cleaner, which
  // label by the queue, write them in the queue's own slot.
  const hashQueues = isSlotPerQueue(prefix) ? [...new Set([...storage, ...queues])] : [undefined];
  for (const metric of hashMetrics) {
    for (const queue of hashQueues) {
      const key =
        queue === undefined ? metricHashKey(prefix, metric) : queueMetricHashKey(prefix, queue, metric);
      read.push({ key, add: (p) => p.hgetall(key) });
    }
  }
  const lastSuccessKey = metricHashKey(prefix, clusterMetrics.cleanerLastSuccess);
  read.push({ key: lastSuccessKey, add: (p) => p.hget(lastSuccessKey, '') });
  const replies = await execPerNode(redis, read);
  let r = 0;
  const next = () => replies[r++];

  const available = new Map<string, number>();
  const age = new Map<string, number>();
  const running = new Map<string, number>();
  const incidents = new Map<string, number>();
  const rateLimited = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, value: number) =>
    map.set(key, (map.get(key) ?? 0) + value);
  const maxInto = (map: Map<string, number>, key: string, value: number) =>
    map.set(key, Math.max(map.get(key) ?? 0, value));
  for (const row of gaugeRows) {
    const key = [row.queue, row.task, ...row.part].join(labelSeparator);
    add(available, key, Number(next()));
    const oldest = next() as string[];
    maxInto(age, key, oldest.length === 2 ? Math.max(0, (now - Number(oldest[1])) / 1000) : 0);
    add(running, key, Number(next()));
    add(incidents, key, Number(next()));
    add(rateLimited, key, Number(next()));
  }
  let out = '';
  const gauge = (metric: MetricDefinition, values: Map<string, number>) => {
    out += header(metric);
    for (const [key, value] of values)
      out += `${metric.name}${labelText(metric.labelNames, key.split(labelSeparator))} ${formatNumber(value)}\n`;
  };
  const partitioned = (metric: MetricDefinition): MetricDefinition =>
    options.partitionLabel ? { ...metric, labelNames: [...metric.labelNames, 'partition'] } : metric;
  gauge(partitioned(clusterMetrics.jobsAvailable), available);
  gauge(partitioned(clusterMetrics.jobsAvailableAge), age);
  gauge(partitioned(clusterMetrics.jobsRunning), running);
  gauge(partitioned(clusterMetrics.incidents), incidents);
  gauge(partitioned(clusterMetrics.jobsRateLimited), rateLimited);

  const jobs = new Map<string, number>();
  const lag = new Map<string, number>();
  for (const queue of storage) {
    const label = labelOf(queue);
    const counts = jobCountsFromReplies(Array.from({ length: jobCountReplies }, next));
    for (const state of jobsGaugeStates)
      add(jobs, [label, state, ...partOf(queue)].join(labelSeparator), counts[state]);
    const [redisNowMs, oldest] = next() as [number, string];
    const oldestMs = oldest ? Number(oldest.split('-')[0]) : redisNowMs;
    maxInto(lag, label, Math.max(0, redisNowMs - oldestMs) / 1000);
  }
  gauge(partitioned(clusterMetrics.jobs), jobs);
  gauge(clusterMetrics.exporterLag, lag);
  gauge(clusterMetrics.exporterRecounting, recounting);

  for (const metric of hashMetrics) {
    const stored: Record<string, string> = {};
    for (const _ of hashQueues) {
      for (const [field, value] of Object.entries((next() as Record<string, string>) ?? {}))
        stored[field] = stored[field] === undefined ? value : String(Number(stored[field]) + Number(value));
    }
    out +=
      metric.type === 'histogram'
        ? renderHistogram(metric, stored, registry)
        : renderCounter(metric, stored, registry, queues);
  }
  const lastSuccess = next() as string | null;
  out += header(clusterMetrics.cleanerLastSuccess);
  if (lastSuccess) out += `${clusterMetrics.cleanerLastSuccess.name} ${Number(lastSuccess)}\n`;
  return out;
}

/** Sums stored fields whose task label maps to the same bounded label set. */
function boundedValues(metric: MetricDefinition, stored: Record<string, string>, registry: TaskRegistry) {
  const taskIndex = metric.labelNames.indexOf('task');
  const values = new Map<string, number>();
  for (const [fieldName, raw] of Object.entries(stored)) {
    const parts = fieldName.split(labelSeparator);
    if (taskIndex >= 0 && parts[taskIndex] !== undefined)
      parts[taskIndex] = boundTask(registry, parts[taskIndex]!);
    const key = parts.join(labelSeparator);
    values.set(key, (values.get(key) ?? 0) + Number(raw));
  }
  return values;
}

/** Counter series present from the start, so rate() and dashboards see zeros rather than gaps. */
const zeroFilledValues: Record<string, readonly (string | undefined)[]> = {
  status: ['completed', 'failed'],
  transition: transitions,
};

function renderCounter(
  metric: MetricDefinition,
  stored: Record<string, string>,
  registry: TaskRegistry,
  queues: string[],
) {
  const values = boundedValues(metric, stored, registry);
  if (metric.labelNames[0] === 'queue' && metric.labelNames[1] === 'task') {
    const third = metric.labelNames[2] === undefined ? [undefined] : zeroFilledValues[metric.labelNames[2]];
    for (const queue of queues) {
      for (const task of tasksOf(registry, queue)) {
        for (const value of third ?? []) {
          const key = [queue, task, ...(value === undefined ? [] : [value])].join(labelSeparator);
          if (!values.has(key)) values.set(key, 0);
        }
      }
    }
  }
  let out = header(metric);
  for (const [key, value] of values)
    out += `${metric.name}${labelText(metric.labelNames, key.split(labelSeparator))} ${formatNumber(value)}\n`;
  return out;
}

function renderHistogram(metric: MetricDefinition, stored: Record<string, string>, registry: TaskRegistry) {
  const buckets = metric.buckets ?? [];
  const series = new Map<string, { counts: number[]; sum: number; count: number }>();
  for (const [key, value] of boundedValues(metric, stored, registry)) {
    const cut = key.lastIndexOf(labelSeparator);
    const labels = key.slice(0, cut);
    const part = key.slice(cut + 1);
    const s = series.get(labels) ?? { counts: new Array(buckets.length + 1).fill(0), sum: 0, count: 0 };
    series.set(labels, s);
    if (part === 'sum') s.sum += value;
    else if (part === 'count') s.count += value;
    else if (part.startsWith('b')) s.counts[Number(part.slice(1))]! += value;
  }
  let out = header(metric);
  for (const [labels, s] of series) {
    const values = labels.split(labelSeparator);
    let cumulative = 0;
    buckets.forEach((bound, i) => {
      cumulative += s.counts[i]!;
      out += `${metric.name}_bucket${labelText(metric.labelNames, values, `le="${bound}"`)} ${cumulative}\n`;
    });
    out += `${metric.name}_bucket${labelText(metric.labelNames, values, 'le="+Inf"')} ${s.count}\n`;
    out += `${metric.name}_sum${labelText(metric.labelNames, values)} ${s.sum}\n`;
    out += `${metric.name}_count${labelText(metric.labelNames, values)} ${s.count}\n`;
  }
  return out;
}

/** Available jobs per task type of one queue as the exporter's bookkeeping holds them. */
export interface AvailableByTask {
  /** Absent until the exporter's first count of the queue is done: nothing is known yet, not 0. */
  available?: Map<string, number>;
  /** A recount of the queue runs (or waits to be resumed): `available` is its last committed value. */
  recounting: boolean;
}

/** Available jobs per task type of one queue, from the exporter's bookkeeping. */
export async function readAvailableByTask(
  redis: Redis,
  prefix: string,
  queue: string,
): Promise<AvailableByTask> {
  const [tasks, counted, recounting] = await Promise.all([
    redis.smembers(jobbersKey(prefix, queue, 'tasks')),
    redis.hexists(exporterStateKey(prefix, queue), 'pos'),
    redis.exists(recountProgressKey(prefix, queue)),
  ]);
  if (counted !== 1) return { recounting: recounting === 1 };
  const pipeline = redis.pipeline();
  for (const task of tasks) pipeline.zcard(jobbersKey(prefix, queue, `avail:${task}`));
  const replies = (await pipeline.exec()) ?? [];
  const available = new Map(
    tasks.map((task, i) => {
      const [error, count] = replies[i] ?? [null, 0];
      if (error) throw error;
      return [task, Number(count)];
    }),
  );
  return { available, recounting: recounting === 1 };
}
