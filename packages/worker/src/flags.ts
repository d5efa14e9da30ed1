// jobbers-worker's flags, folded into the environment variables they mirror so that one parser
// (loadWorkerConfig) validates both. CLI durations take units; the variables hold milliseconds.
import { envWithFlags, type FlagVariable, JobbersError, sharedFlagVariables } from '@jobbers/core';

export interface WorkerFlags {
  tasks?: string;
  redisUrl?: string;
  prefix?: string;
  roles?: string;
  metricsFlush?: string;
  logLevel?: string;
  role?: string;
  concurrency?: string;
  ttl?: string;
  metricsPort?: string;
  queueCapacity?: string;
  shutdownGrace?: string;
  lease?: string;
  redisCommandTimeout?: string;
  processes?: string;
}

const flagVariables = {
  ...sharedFlagVariables,
  metricsFlush: { variable: 'JOBBERS_METRICS_FLUSH_MS', duration: true },
  role: 'WORKER_ROLE',
  concurrency: 'WORKER_CONCURRENT_TASKS',
  ttl: 'WORKER_TTL',
  metricsPort: 'WORKER_METRICS_PORT',
  queueCapacity: 'WORKER_QUEUE_CAPACITY',
  shutdownGrace: { variable: 'WORKER_SHUTDOWN_GRACE_MS', duration: true },
  lease: { variable: 'WORKER_LEASE_MS', duration: true },
} satisfies Record<keyof Omit<WorkerFlags, 'processes'>, FlagVariable>;

/** The environment a worker runs with: the process's own, overridden by any flag given. */
export function workerEnv(flags: WorkerFlags, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return envWithFlags({ ...flags }, flagVariables, base);
}

export const maxProcesses = 256;

/** --processes: undefined runs one worker in this process; N runs a supervisor of N workers. */
export function parseProcesses(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > maxProcesses) {
    throw new JobbersError(
      'CONFIG_INVALID',
      `--processes "${raw}" must be a whole number 1..${maxProcesses}`,
    );
  }
  return value;
}
