// The metrics contract: every metric Jobbers serves, its type, labels and buckets. Cluster-wide
// metrics are kept in Redis and rendered by every manager; per-process metrics by each process.
// No other module names a metric or its labels.

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDefinition {
  name: string;
  type: MetricType;
  help: string;
  labelNames: readonly string[];
  buckets?: readonly number[];
}

/** Seconds; shared by the latency histograms so dashboards can compare them. */
export const latencyBuckets = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
] as const;

const define = <const T extends MetricDefinition>(d: T) => d;

export const clusterMetrics = {
  jobsAvailable: define({
    name: 'jobbers_jobs_available',
    type: 'gauge',
    help: 'Jobs ready to be activated now (BullMQ wait, paused or prioritized), per task type',
    labelNames: ['queue', 'task'],
  }),
  jobsAvailableAge: define({
    name: 'jobbers_jobs_available_age_seconds',
    type: 'gauge',
    help: 'Age of the oldest available job: how long it has been available (the backlog age)',
    labelNames: ['queue', 'task'],
  }),
  jobsRateLimited: define({
    name: 'jobbers_jobs_rate_limited',
    type: 'gauge',
    help: 'Jobs waiting for a rate limit (their own, or an upstream 429 through ctx.rateLimited): delayed, not available',
    labelNames: ['queue', 'task'],
  }),
  jobs: define({
    name: 'jobbers_jobs',
    type: 'gauge',
    help: 'Jobs per BullMQ state',
    labelNames: ['queue', 'state'],
  }),
  jobsRunning: define({
    name: 'jobbers_jobs_running',
    type: 'gauge',
    help: 'Jobs being run by a worker now (BullMQ active)',
    labelNames: ['queue', 'task'],
  }),
  incidents: define({
    name: 'jobbers_incidents',
    type: 'gauge',
    help: 'Open incidents: tasks failed with no retries left, not yet retried or removed',
    labelNames: ['queue', 'task'],
  }),
  transitions: define({
    name: 'jobbers_job_transitions_total',
    type: 'counter',
    help: 'Lifecycle transitions',
    labelNames: ['queue', 'task', 'transition'],
  }),
  tasksSelected: define({
    name: 'jobbers_tasks_selected_total',
    type: 'counter',
    help: 'Tasks taken by a worker',
    labelNames: ['queue', 'task', 'role'],
  }),
  timeInQueue: define({
    name: 'jobbers_time_in_queue_seconds',
    type: 'histogram',
    help: 'From the moment a job last became available to its activation',
    labelNames: ['queue', 'task', 'role'],
    buckets: latencyBuckets,
  }),
  tasksProcessed: define({
    name: 'jobbers_tasks_processed_total',
    type: 'counter',
    help: 'Tasks finished: completed, or failed with no retries left',
    labelNames: ['queue', 'task', 'status'],
  }),
  executionTime: define({
    name: 'jobbers_execution_time_seconds',
    type: 'histogram',
    help: 'Run time of each attempt, by outcome (completed, failed, retried)',
    labelNames: ['queue', 'task', 'status'],
    buckets: latencyBuckets,
  }),
  endToEndLatency: define({
    name: 'jobbers_end_to_end_latency_seconds',
    type: 'histogram',
    help: 'From submission to the final finish',
    labelNames: ['queue', 'task', 'status'],
    buckets: latencyBuckets,
  }),
  tasksRetried: define({
    name: 'jobbers_tasks_retried_total',
    type: 'counter',
    help: 'Failed attempts that will be retried',
    labelNames: ['queue', 'task'],
  }),
  tasksTimedOut: define({
    name: 'jobbers_tasks_timed_out_total',
    type: 'counter',
    help: 'Attempts that ran past their execution timeout or whose lease expired',
    labelNames: ['queue', 'task'],
  }),
  completionsRejected: define({
    name: 'jobbers_completions_rejected_total',
    type: 'counter',
    help: 'Completions from a worker that had lost the job (never applied)',
    labelNames: ['queue', 'task'],
  }),
  cleanerRemoved: define({
    name: 'jobbers_cleaner_removed_total',
    type: 'counter',
    help: 'Tasks removed by jobbers-cleaner',
    labelNames: ['queue', 'task', 'state'],
  }),
  workflowsStarted: define({
    name: 'jobbers_workflows_started_total',
    type: 'counter',
    help: 'Workflows submitted (a repeated id is not counted again)',
    labelNames: ['workflow'],
  }),
  workflowsFinished: define({
    name: 'jobbers_workflows_finished_total',
    type: 'counter',
    help: 'Workflows that reached a final state: completed, or failed (a node failed with no retry left)',
    labelNames: ['workflow', 'state'],
  }),
  workflowDuration: define({
    name: 'jobbers_workflow_duration_seconds',
    type: 'histogram',
    help: "From a workflow's submission to its final state",
    labelNames: ['workflow'],
    buckets: latencyBuckets,
  }),
  scheduleRuns: define({
    name: 'jobbers_schedule_runs_total',
    type: 'counter',
    help: "Runs of each schedule: a tick's task counted when a worker first starts it",
    labelNames: ['queue', 'task', 'schedule'],
  }),
  scheduleLateness: define({
    name: 'jobbers_schedule_lateness_seconds',
    type: 'histogram',
    help: "From a schedule's tick to the start of its run",
    labelNames: ['queue', 'task', 'schedule'],
    buckets: latencyBuckets,
  }),
  cleanerLastSuccess: define({
    name: 'jobbers_cleaner_last_success_timestamp_seconds',
    type: 'gauge',
    help: 'When jobbers-cleaner last finished a run without error (unix seconds)',
    labelNames: [],
  }),
  exporterRecounting: define({
    name: 'jobbers_exporter_recounting',
    type: 'gauge',
    help: 'Whether the lifecycle exporter is recounting the queue from BullMQ (1) or not (0); while it is, the queue gauges keep their last committed values, or are absent before the first count',
    labelNames: ['queue'],
  }),
  exporterLag: define({
    name: 'jobbers_exporter_lag_seconds',
    type: 'gauge',
    help: 'How long the oldest event of the queue the lifecycle exporter has not applied yet has been waiting',
    labelNames: ['queue'],
  }),
} as const;

export type ClusterMetricKey = keyof typeof clusterMetrics;

/** Metrics each process serves on its own /metrics (prom-client in that process, not Redis). */
export const processMetrics = {
  metricsFlushFailures: define({
    name: 'jobbers_metrics_flush_failures_total',
    type: 'counter',
    help: 'Writes of buffered cluster metrics to Redis that failed in this process (each is retried)',
    labelNames: [],
  }),
  metricsDroppedIncrements: define({
    name: 'jobbers_metrics_dropped_increments_total',
    type: 'counter',
    help: 'Metric increments this process dropped because its buffer was full while Redis refused writes',
    labelNames: [],
  }),
  processErrors: define({
    name: 'jobbers_process_errors_total',
    type: 'counter',
    help: 'Errors this process logged and carried on after, by the operation that failed',
    labelNames: ['operation'],
  }),
  clusterMetricsUp: define({
    name: 'jobbers_cluster_metrics_up',
    type: 'gauge',
    help: '1 when this manager could read the cluster-wide metrics from Redis for this scrape, else 0',
    labelNames: [],
  }),
  httpRequests: define({
    name: 'jobbers_http_requests_total',
    type: 'counter',
    help: 'HTTP requests served by this manager',
    labelNames: ['method', 'route', 'status_code'],
  }),
  httpRequestDuration: define({
    name: 'jobbers_http_request_duration_seconds',
    type: 'histogram',
    help: 'HTTP request duration in this manager',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  }),
  httpInflightRequests: define({
    name: 'jobbers_http_inflight_requests',
    type: 'gauge',
    help: 'HTTP requests in flight in this manager',
    labelNames: ['method', 'route'],
  }),
  workerRunningTasks: define({
    name: 'jobbers_worker_running_tasks',
    type: 'gauge',
    help: 'Tasks this worker process is running now',
    labelNames: ['role'],
  }),
  workerCapacity: define({
    name: 'jobbers_worker_capacity',
    type: 'gauge',
    help: 'Tasks this worker process may run at once',
    labelNames: ['role'],
  }),
} as const;

/** The prefix of prom-client's default process metrics (CPU, memory, event loop) in each process. */
export const defaultProcessMetricsPrefix = {
  manager: 'jobbers_manager_',
  worker: 'jobbers_worker_',
} as const;

/** What prom-client's metric constructors take from a definition: name, help, labels, buckets. */
export function promMetricOptions<const D extends MetricDefinition>(
  metric: D,
): { name: string; help: string; labelNames: D['labelNames']; buckets?: number[] } {
  const { name, help, labelNames, buckets } = metric;
  return buckets ? { name, help, labelNames, buckets: [...buckets] } : { name, help, labelNames };
}

/** Label values are joined with this in Redis hash fields; names and queues cannot contain it. */
export const labelSeparator = '|';

export function labelField(values: readonly string[]): string {
  return values.join(labelSeparator);
}

export function bucketIndex(buckets: readonly number[], valueSeconds: number): number {
  for (let i = 0; i < buckets.length; i++) if (valueSeconds <= buckets[i]!) return i;
  return buckets.length;
}
