// Cold recount of a large backlog: N waiting tasks of three types enqueued with addBulk while no
// manager runs, then one real jobbers-manager process started. Measures the seconds until its
// /metrics shows the exact jobbers_jobs_available for every type, and the manager's peak RSS
// (VmHWM). The loaded variant keeps a worker draining and a producer adding while it counts, and
// checks the gauge once everything is quiet again, and that the recount never started over.
import { readFileSync } from 'node:fs';
import { queueKey } from '@jobbers/core';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { parseExposition } from '../test/support/metrics.js';
import { bins, type RunningProcess, startProcess } from '../test/support/processes.js';
import { freePort } from '../test/support/redis-server.js';
import { redisCpuSeconds } from './drain.js';

export interface RecountBenchSettings {
  redisUrl: string;
  admin: Redis;
  jobs: number;
  /** Give up waiting for an exact gauge after this long (the old recount may never finish). */
  timeoutSeconds: number;
  /** Drain with a worker and keep adding tasks while the recount runs. */
  underLoad: boolean;
}

export interface RecountBenchResult {
  /** From the manager's spawn until its /metrics showed the true count for every type. */
  exactAfterSeconds: number | undefined;
  /** What the gauge read when the bench gave up (or at the end). */
  lastGauge: Record<string, number>;
  truth: Record<string, number>;
  /** How often the manager logged the start of a recount. */
  recountsStarted: number;
  /** How often a recount started over (the stream was trimmed past it). */
  recountRestarts: number;
  /** The recount's own duration as the manager logged it (absent when it logs none). */
  recountSeconds: number | undefined;
  peakRssMb: number;
  /**
   * CPU seconds spent until the gauge was exact (quiet variant): redis-server's and the manager's.
   * Unlike the elapsed time, these barely move when other work competes for the CPUs.
   */
  cpuSeconds?: { redis: number; manager: number };
  /** Loaded variant: tasks the worker finished and the producer added while counting. */
  drained?: number;
  added?: number;
}

const prefix = 'benchrecount';
const queueName = 'default';
const types = [
  { name: 'example.echo', params: {} },
  { name: 'example.sleep', params: { ms: 0 } },
  { name: 'example.flaky', params: { failTimes: 0 } },
];

async function enqueue(queue: Queue, count: number, offset = 0) {
  const batch = 10_000;
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    await queue.addBulk(
      Array.from({ length: n }, (_, i) => {
        const type = types[(offset + start + i) % types.length]!;
        return { name: type.name, data: { params: type.params } };
      }),
    );
  }
}

/** Available tasks per type, read from BullMQ's own lists in chunks. */
async function trueAvailable(admin: Redis): Promise<Record<string, number>> {
  const qp = queueKey(prefix, queueName);
  const counts: Record<string, number> = Object.fromEntries(types.map((t) => [t.name, 0]));
  const script = `
    local ids = KEYS[2] == 'list' and redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])
      or redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
    local out = {}
    for i, id in ipairs(ids) do out[i] = redis.call('HGET', ARGV[3] .. id, 'name') or '' end
    return out`;
  for (const [suffix, kind] of [
    ['wait', 'list'],
    ['paused', 'list'],
    ['prioritized', 'zset'],
  ] as const) {
    for (let start = 0; ; start += 10_000) {
      const names = (await admin.eval(
        script,
        2,
        `${qp}:${suffix}`,
        kind,
        start,
        start + 9999,
        `${qp}:`,
      )) as string[];
      for (const name of names) if (name) counts[name] = (counts[name] ?? 0) + 1;
      if (names.length < 10_000) break;
    }
  }
  return counts;
}

async function readGauge(port: number): Promise<Record<string, number> | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    if (!response.ok) return undefined;
    const gauge: Record<string, number> = {};
    for (const s of parseExposition(await response.text()))
      if (s.name === 'jobbers_jobs_available' && s.labels.queue === queueName)
        gauge[s.labels.task!] = s.value;
    return gauge;
  } catch {
    return undefined;
  }
}

function processCpuSeconds(pid: number): number {
  // utime and stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second).
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

const sameCounts = (a: Record<string, number> | undefined, b: Record<string, number>) =>
  a !== undefined && types.every((t) => a[t.name] === b[t.name]);

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runRecountBench(settings: RecountBenchSettings): Promise<RecountBenchResult> {
  const { admin, redisUrl } = settings;
  await admin.flushall();
  const queue = new Queue(queueName, { connection: admin.duplicate(), prefix });
  await enqueue(queue, settings.jobs);
  const env = { REDIS_URL: redisUrl, JOBBERS_PREFIX: prefix, JOBBERS_TASKS: '@jobbers/examples' };
  const port = await freePort();
  const processes: RunningProcess[] = [];
  try {
    const quietTruth = await trueAvailable(admin);
    const redisCpuBefore = await redisCpuSeconds(admin);
    const startedAt = performance.now();
    const manager = startProcess(bins.manager, [], { ...env, MANAGER_PORT: String(port) });
    processes.push(manager);
    const recountsStarted = () => manager.output().match(/recounting queue state/g)?.length ?? 0;
    const recountRestarts = () => manager.output().match(/recount invalidated/g)?.length ?? 0;
    const recountSeconds = () => {
      const ms = /"ms":(\d+),"msg":"recount done"/.exec(manager.output())?.[1];
      return ms === undefined ? undefined : Number(ms) / 1000;
    };
    const deadline = startedAt + settings.timeoutSeconds * 1000;
    let lastGauge: Record<string, number> = {};
    const quietOutcome = () => ({
      lastGauge,
      truth: quietTruth,
      recountsStarted: recountsStarted(),
      recountRestarts: recountRestarts(),
      recountSeconds: recountSeconds(),
      peakRssMb: peakRssMb(manager.child.pid!),
    });
    if (!settings.underLoad) {
      for (;;) {
        const gauge = await readGauge(port);
        if (gauge) lastGauge = gauge;
        if (sameCounts(gauge, quietTruth)) {
          const exactAfterSeconds = (performance.now() - startedAt) / 1000;
          const cpuSeconds = {
            redis: (await redisCpuSeconds(admin)) - redisCpuBefore,
            manager: processCpuSeconds(manager.child.pid!),
          };
          return { ...quietOutcome(), cpuSeconds, exactAfterSeconds };
        }
        if (performance.now() > deadline) return { ...quietOutcome(), exactAfterSeconds: undefined };
        await pause(100);
      }
    }
    const worker = startProcess(bins.worker, [], {
      ...env,
      WORKER_CONCURRENT_TASKS: '50',
      WORKER_METRICS_PORT: '0',
    });
    processes.push(worker);
    let added = 0;
    let producing = true;
    const producer = (async () => {
      while (producing) {
        await enqueue(queue, 500, added);
        added += 500;
        await pause(100);
      }
    })();
    const stateKey = `${prefix}:${queueName}:jobbers:exporter`;
    let finished = false;
    while (performance.now() < deadline) {
      const gauge = await readGauge(port);
      if (gauge) lastGauge = gauge;
      if (Number((await admin.hget(stateKey, 'recounts')) ?? 0) >= 1) {
        finished = true;
        break;
      }
      await pause(100);
    }
    const countedAfterSeconds = (performance.now() - startedAt) / 1000;
    // A few more seconds of traffic after the recount, so the replay and reconcile run under load.
    if (finished) await pause(3000);
    producing = false;
    await producer;
    worker.kill('SIGTERM');
    await worker.exited;
    const truth = await trueAvailable(admin);
    let exact = false;
    const quietDeadline = performance.now() + 30_000;
    while (finished && performance.now() < quietDeadline) {
      const gauge = await readGauge(port);
      if (gauge) lastGauge = gauge;
      if (sameCounts(gauge, truth)) {
        exact = true;
        break;
      }
      await pause(100);
    }
    const drained = settings.jobs + added - Object.values(truth).reduce((a, b) => a + b, 0);
    return {
      exactAfterSeconds: exact ? countedAfterSeconds : undefined,
      lastGauge,
      truth,
      recountsStarted: recountsStarted(),
      recountRestarts: recountRestarts(),
      recountSeconds: recountSeconds(),
      peakRssMb: peakRssMb(manager.child.pid!),
      drained,
      added,
    };
  } finally {
    for (const p of processes.reverse()) await p.stop();
    await queue.close();
  }
}
