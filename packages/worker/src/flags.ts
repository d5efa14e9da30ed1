// jobbers-worker's flags, folded into the environment variables they mirror so that one parser
// (loadWorkerConfig) validates both. CLI durations take units; the variables hold milliseconds.
import { JobbersError, parseDurationMs } from '@jobbers/core';

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

/** A duration flag: `500ms`, `30s`, `15m`, `2h`, `7d`, or a bare number of milliseconds. */
export function durationFlagMs(raw: string, flag: string): number {
  const ms = parseDurationMs(raw, { bareNumberIsMs: true });
  if (ms === undefined) {
    throw new JobbersError(
      'CONFIG_INVALID',
      `${flag} "${raw}" must be a duration like 500ms, 30s, 15m, 2h or 7d (a bare number is milliseconds)`,
    );
  }
  return ms;
}

/** The environment a worker runs with: the process's own, overridden by any flag given. */
export function workerEnv(flags: WorkerFlags, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  const set = (name: string, value: string | undefined) => {
    if (value !== undefined) env[name] = value;
  };
  set('JOBBERS_TASKS', flags.tasks);
  set('REDIS_URL', flags.redisUrl);
  set('JOBBERS_PREFIX', flags.prefix);
  set('JOBBERS_ROLES', flags.roles);
  set('LOG_LEVEL', flags.logLevel);
  if (flags.metricsFlush !== undefined)
    set('JOBBERS_METRICS_FLUSH_MS', String(durationFlagMs(flags.metricsFlush, '--metrics-flush')));
  set('WORKER_ROLE', flags.role);
  set('WORKER_CONCURRENT_TASKS', flags.concurrency);
  set('WORKER_TTL', flags.ttl);
  set('WORKER_METRICS_PORT', flags.metricsPort);
  set('WORKER_QUEUE_CAPACITY', flags.queueCapacity);
  if (flags.shutdownGrace !== undefined)
    set('WORKER_SHUTDOWN_GRACE_MS', String(durationFlagMs(flags.shutdownGrace, '--shutdown-grace')));
  if (flags.lease !== undefined) set('WORKER_LEASE_MS', String(durationFlagMs(flags.lease, '--lease')));
  if (flags.redisCommandTimeout !== undefined)
    set(
      'JOBBERS_REDIS_COMMAND_TIMEOUT_MS',
      String(durationFlagMs(flags.redisCommandTimeout, '--redis-command-timeout')),
    );
  return env;
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
