// Drain throughput: N no-op jobs pre-filled, then drained by one worker; jobs/s from the first
// activation to the last completion, read back from the jobs' own processedOn/finishedOn.
// Variants: a bare BullMQ Worker, the Jobbers worker, and the Jobbers worker with the lifecycle
// exporter running (metrics on): in a process of its own as jobbers-manager runs it (as deployed),
// or in the worker's own process (the worst case). Runs are interleaved and repeated.

import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  createRedisConnection,
  defineTask,
  jobKey,
  loadWorkerConfig,
  parseRoles,
  TaskClient,
  TaskRegistry,
  type WorkerConfig,
  waitForRedis,
} from '@jobbers/core';
import { JobbersWorker } from '@jobbers/worker';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import type { ExporterReply, ExporterRequest } from './exporter-process.js';
import { pinProcess, runWhenIdle } from './layout.js';
import { startManagerExporter } from './manager-exporter.js';
import type { VariantName } from './options.js';

export type DrainVariant = VariantName;

export interface DrainSettings {
  redisUrl: string;
  /** A connection to the private redis-server for reading results and flushing between runs. */
  admin: Redis;
  jobs: number;
  concurrency: number;
  /** Where the exporter's own process runs: at idle priority or not, on these CPUs (else anywhere). */
  exporterPlacement?: { idlePriority: boolean; cpus?: string };
}

export interface DrainRun {
  round: number;
  variant: DrainVariant;
  jobs: number;
  windowMs: number;
  jobsPerSecond: number;
  /** With the exporter: from the last completion until the exporter had applied every event. */
  exporterCatchUpMs?: number;
  /**
   * CPU time per job while draining (worker start to last completion, plus the exporter's catch-up):
   * this process (the worker, and the exporter when in process), the exporter's own process, and
   * redis-server. Unlike jobs/s, these barely move
   * when other work competes for the CPUs, so they show where a slowdown comes from.
   */
  nodeCpuUsPerJob: number;
  redisCpuUsPerJob: number;
  /** The exporter's own process, when it runs in one (already part of nodeCpuUsPerJob). */
  exporterCpuUsPerJob?: number;
}

export const queue = 'bench';
const silentLogger = pino({ level: 'silent' });

export const noopTask = defineTask({
  name: 'bench.noop',
  queue,
  params: { type: 'object' },
  run: async () => {},
});
export const registry = new TaskRegistry([noopTask]);

let prefixCounter = 0;
function freshPrefix(variant: DrainVariant): string {
  prefixCounter += 1;
  return `bench-drain-${variant.replace('+', '-')}-${process.pid}-${prefixCounter}`;
}

export function workerConfig(settings: DrainSettings, prefix: string): WorkerConfig {
  return loadWorkerConfig({
    REDIS_URL: settings.redisUrl,
    JOBBERS_PREFIX: prefix,
    JOBBERS_TASKS: 'bench (registry built in bench/drain.ts)',
    WORKER_ROLE: 'default',
    WORKER_CONCURRENT_TASKS: String(settings.concurrency),
    WORKER_METRICS_PORT: '0',
  });
}

/** Submits the jobs the way the manager does (TaskClient: ULID ids, completed jobs kept). */
async function prefill(settings: DrainSettings, prefix: string, count: number): Promise<string[]> {
  const connection = createRedisConnection(settings.redisUrl, { connectionName: 'bench-prefill' });
  connection.on('error', () => {});
  await waitForRedis(connection, 10_000);
  const client = new TaskClient({ connection, prefix, registry });
  const ids: string[] = [];
  try {
    for (let done = 0; done < count; ) {
      const size = Math.min(1000, count - done);
      const batch = Array.from({ length: size }, () => ({ task: noopTask.name, params: {} }));
      for (const result of await client.submitBatch(batch)) ids.push(result.id);
      done += size;
    }
  } finally {
    await client.close();
    await connection.quit();
  }
  return ids;
}

export type StopWorker = () => Promise<void>;

/**
 * The bare BullMQ worker gets everything the Jobbers worker gives its BullMQ Worker: the same
 * connection settings (core's createRedisConnection, blocking), prefix, concurrency, lock and
 * stalled-check settings. Jobs are the same TaskClient jobs (removeOnComplete: false for both).
 * Neither skips BullMQ's Redis version check (the Jobbers worker stopped doing so in 061d3fb).
 */
async function startBareBullmq(config: WorkerConfig): Promise<StopWorker> {
  const connection = createRedisConnection(config.redisUrl, {
    blocking: true,
    connectionName: 'bench-bare-bullmq',
  });
  const worker = new Worker(queue, async () => {}, {
    connection,
    prefix: config.prefix,
    concurrency: config.concurrentTasks,
    lockDuration: config.leaseMs,
    stalledInterval: Math.max(1000, Math.floor(config.leaseMs / 2)),
    maxStalledCount: 1000,
    autorun: false,
  });
  worker.on('error', (error) => console.error('bare BullMQ worker error:', error.message));
  void worker.run().catch((error) => console.error('bare BullMQ worker loop stopped:', error.message));
  await worker.waitUntilReady();
  return async () => {
    await worker.close();
    await connection.quit().catch(() => {});
  };
}

export async function startJobbers(config: WorkerConfig): Promise<StopWorker> {
  const worker = new JobbersWorker({
    config,
    registry,
    roles: parseRoles(undefined, registry),
    logger: silentLogger,
  });
  await worker.start();
  return async () => {
    await worker.stop();
  };
}

interface RunningExporter {
  /** Resolves once every event is applied, with the CPU time (us) the exporter's process used so far. */
  caughtUp(): Promise<number>;
  stop(): Promise<void>;
}

/** The exporter as jobbers-manager constructs it, in this process. */
async function startExporterInProcess(config: WorkerConfig): Promise<RunningExporter> {
  const { exporter, stop } = await startManagerExporter(
    config.redisUrl,
    config.prefix,
    registry,
    'bench-exporter',
  );
  // Its CPU is already in this process's figure.
  return { caughtUp: () => exporter.waitUntilCaughtUp(60_000).then(() => 0), stop };
}

const exporterProcessEntry = fileURLToPath(new URL('./exporter-process.ts', import.meta.url));

/**
 * The exporter in a process of its own, as deployed (jobbers-manager runs it, apart from workers,
 * with CPU of its own). Here it gets only CPU time the worker and redis-server leave idle (see
 * layout.ts), and, with the pinned layout, only redis-server's core.
 */
async function startExporterProcess(
  config: WorkerConfig,
  placement: DrainSettings['exporterPlacement'],
): Promise<RunningExporter> {
  const child: ChildProcess = fork(exporterProcessEntry, [], {
    execArgv: ['--import', 'tsx'],
    env: {
      ...process.env,
      REDIS_URL: config.redisUrl,
      JOBBERS_PREFIX: config.prefix,
      BENCH_QUEUE: queue,
      BENCH_TASK: noopTask.name,
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = (type: ExporterReply['type']) =>
    new Promise<ExporterReply>((resolve, reject) => {
      const onMessage = (reply: ExporterReply) => {
        if (reply.type !== type && reply.type !== 'error') return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (reply.type === 'error') reject(new Error(`exporter process: ${reply.message}`));
        else resolve(reply);
      };
      const onExit = (code: number | null) => {
        child.off('message', onMessage);
        reject(new Error(`exporter process exited (${code}) before '${type}'`));
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  const request = (message: ExporterRequest) => child.send(message);
  await next('ready');
  try {
    if (placement?.idlePriority) runWhenIdle(child.pid!);
    if (placement?.cpus) pinProcess(child.pid!, placement.cpus);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`could not place the exporter's process: ${(error as Error).message}`);
  }
  return {
    caughtUp: async () => {
      request({ type: 'caught-up' });
      return ((await next('caught-up')) as { cpuUs: number }).cpuUs;
    },
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      request({ type: 'stop' });
      await next('stopped').catch(() => child.kill('SIGKILL'));
      await exited;
    },
  };
}

export async function redisCpuSeconds(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const read = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return read('used_cpu_user') + read('used_cpu_sys');
}

export async function waitForDrain(admin: Redis, prefix: string, count: number): Promise<void> {
  const deadline = Date.now() + Math.max(60_000, (count / 200) * 1000);
  const completedKey = `${prefix}:${queue}:completed`;
  const failedKey = `${prefix}:${queue}:failed`;
  for (;;) {
    const [[, completed], [, failed]] = (await admin.multi().zcard(completedKey).zcard(failedKey).exec()) as [
      [null, number],
      [null, number],
    ];
    if (failed > 0) throw new Error(`${failed} no-op jobs failed during the drain`);
    if (completed >= count) return;
    if (Date.now() > deadline) throw new Error(`drain timed out: ${completed}/${count} completed`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** First activation and last completion, from the jobs' processedOn / finishedOn. */
async function activationWindow(admin: Redis, prefix: string, ids: string[]) {
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (let i = 0; i < ids.length; i += 2000) {
    const pipeline = admin.pipeline();
    for (const id of ids.slice(i, i + 2000))
      pipeline.hmget(jobKey(prefix, queue, id), 'processedOn', 'finishedOn');
    for (const [error, value] of (await pipeline.exec()) ?? []) {
      if (error) throw error;
      const [processedOn, finishedOn] = (value as (string | null)[]).map(Number);
      if (!processedOn || !finishedOn) throw new Error('a drained job has no processedOn/finishedOn');
      first = Math.min(first, processedOn);
      last = Math.max(last, finishedOn);
    }
  }
  return { first, last };
}

export async function drainOnce(
  settings: DrainSettings,
  variant: DrainVariant,
  round: number,
  jobs = settings.jobs,
): Promise<DrainRun> {
  const config = workerConfig(settings, freshPrefix(variant));
  const metrics =
    variant === 'jobbers+exporter'
      ? await startExporterInProcess(config)
      : variant === 'jobbers+exporter-process'
        ? await startExporterProcess(config, settings.exporterPlacement)
        : undefined;
  let stopWorker: StopWorker | undefined;
  try {
    const ids = await prefill(settings, config.prefix, jobs);
    const exporterCpuBefore = (await metrics?.caughtUp()) ?? 0;
    const redisCpuBefore = await redisCpuSeconds(settings.admin);
    const nodeCpuBefore = process.cpuUsage();
    stopWorker = variant === 'bullmq' ? await startBareBullmq(config) : await startJobbers(config);
    await waitForDrain(settings.admin, config.prefix, jobs);
    let caughtUpAt: number | undefined;
    let exporterCpuUs = 0;
    if (metrics) {
      exporterCpuUs = (await metrics.caughtUp()) - exporterCpuBefore;
      caughtUpAt = Date.now();
    }
    const nodeCpu = process.cpuUsage(nodeCpuBefore);
    const redisCpu = (await redisCpuSeconds(settings.admin)) - redisCpuBefore;
    const { first, last } = await activationWindow(settings.admin, config.prefix, ids);
    const windowMs = Math.max(1, last - first);
    return {
      round,
      variant,
      jobs,
      windowMs,
      jobsPerSecond: (jobs / windowMs) * 1000,
      exporterCatchUpMs: caughtUpAt === undefined ? undefined : Math.max(0, caughtUpAt - last),
      nodeCpuUsPerJob: (nodeCpu.user + nodeCpu.system + exporterCpuUs) / jobs,
      redisCpuUsPerJob: (redisCpu * 1e6) / jobs,
      exporterCpuUsPerJob: variant === 'jobbers+exporter-process' ? exporterCpuUs / jobs : undefined,
    };
  } finally {
    await stopWorker?.();
    await metrics?.stop();
    await settings.admin.flushall();
  }
}

/** Round r runs the variants rotated by r, so each variant takes each position equally often. */
export function roundOrder<T>(variants: readonly T[], round: number): T[] {
  const shift = round % variants.length;
  return [...variants.slice(shift), ...variants.slice(0, shift)];
}
