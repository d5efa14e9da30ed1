// Submission latency: single tasks submitted at a fixed rate, one by one, and drained at once.
// REST submissions go to a real jobbers-manager process (exporter on) and are drained by a real
// jobbers-worker process; queue.add from this process into the same queue, drained by the same
// worker, shows the floor of that path, and queue.add into a bare BullMQ worker the floor of BullMQ.
// Time in queue is read afterwards from BullMQ's own job hashes (processedOn - timestamp); the
// manager's event-loop delay from its /metrics, scraped (and so reset) right before and after a run.
// So that a slow tail can be placed, each run also reports the manager's GC pauses (its own
// nodejs_gc_duration_seconds) and the Redis commands that took 1 ms or more (SLOWLOG).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { scripts } from '@jobbers/core';
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { parseExposition } from '../test/support/metrics.js';
import { bins, type RunningProcess, startProcess } from '../test/support/processes.js';
import { freePort } from '../test/support/redis-server.js';
import { waitFor } from '../test/support/wait.js';
import { percentile } from './stats.js';

export const latencyVariants = [
  'rest',
  'rest, exporter in another manager',
  'queue.add -> jobbers worker',
  'queue.add -> bullmq worker',
] as const;
export type LatencyVariant = (typeof latencyVariants)[number];

export interface LatencySettings {
  redisUrl: string;
  admin: Redis;
  /** Submissions per second. */
  rate: number;
  seconds: number;
  rounds: number;
  concurrency: number;
}

export interface LatencyRun {
  variant: LatencyVariant;
  round: number;
  submitted: number;
  /** Submissions per second actually sent. */
  achievedRate: number;
  timeInQueueMs: { p50: number; p99: number; max: number };
  /** REST only: from the request's start to its response. */
  responseMs?: { p50: number; p99: number };
  /** The manager's event-loop delay p99 over the run (the one that received the submissions). */
  managerLoopDelayP99Ms?: number;
  /**
   * CPU the manager submitted to spent per submission during the run (user + system): it moves less
   * than the times when other work competes for the CPUs, but not nothing (400-440 us at load 17
   * against 316-436 at load 10), and it is not per submission alone: at 300/s it was 1,000-1,300 us.
   */
  managerCpuUsPerSubmission?: number;
  /** The manager's GC pauses during the run (the same manager as the loop delay). */
  managerGc?: { count: number; totalMs: number; over10Ms: number };
  /** Commands Redis took 1 ms or more to run during the run, and the slowest of them. */
  redisSlow: { count: number; slowest?: { name: string; ms: number } };
  errors: number;
}

const prefix = 'benchlatency';
const bullPrefix = 'benchlatency-bull';
const queueName = 'default';
const lagMetric = 'jobbers_manager_nodejs_eventloop_lag_p99_seconds';
const gcMetric = 'jobbers_manager_nodejs_gc_duration_seconds';
/** Redis logs the commands that run this long or longer (microseconds). */
const slowCommandUs = 1000;
const scriptNames = new Map<string, string>(Object.entries(scripts).map(([name, s]) => [s.sha, name]));

function summarize(values: number[]) {
  return { p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(0, ...values) };
}

/** Calls `submit` at `rate` per second for `seconds`, without waiting for one call to finish. */
async function atFixedRate(rate: number, seconds: number, submit: () => Promise<void>) {
  const startedAt = performance.now();
  const total = Math.round(rate * seconds);
  const pending: Promise<void>[] = [];
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - startedAt) / 1000) * rate) + 1);
    while (sent < due) {
      pending.push(submit());
      sent++;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const elapsed = (performance.now() - startedAt) / 1000;
  await Promise.all(pending);
  return { sent, achievedRate: sent / elapsed };
}

function post(agent: http.Agent, port: number, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        agent,
        host: '127.0.0.1',
        port,
        path: '/v1/tasks',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

function processCpuUs(pid: number): number {
  // utime and stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second).
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

interface ManagerScrape {
  loopDelayP99Ms: number;
  /** Cumulative over every kind of GC since the manager started. */
  gc: { count: number; seconds: number; within10Ms: number };
}

/** The manager's /metrics; the loop delay's histogram restarts at every scrape. */
async function scrapeManager(port: number): Promise<ManagerScrape> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  const samples = parseExposition(await response.text());
  const lag = samples.find((s) => s.name === lagMetric);
  const sum = (name: string, le?: string) =>
    samples
      .filter((s) => s.name === name && (le === undefined || s.labels.le === le))
      .reduce((total, s) => total + s.value, 0);
  return {
    loopDelayP99Ms: lag ? lag.value * 1000 : Number.NaN,
    gc: {
      count: sum(`${gcMetric}_count`),
      seconds: sum(`${gcMetric}_sum`),
      within10Ms: sum(`${gcMetric}_bucket`, '0.01'),
    },
  };
}

/** SLOWLOG since its last reset: how many commands, and the slowest by name (a script by its own). */
async function slowCommands(admin: Redis): Promise<LatencyRun['redisSlow']> {
  const entries = (await admin.slowlog('GET', 10_000)) as [number, number, number, string[]][];
  let slowest: { name: string; ms: number } | undefined;
  for (const [, , us, args] of entries) {
    if (slowest && us / 1000 <= slowest.ms) continue;
    const command = String(args[0]).toUpperCase();
    const sha = String(args[1]);
    const name = command === 'EVALSHA' ? (scriptNames.get(sha) ?? `script ${sha.slice(0, 8)}`) : command;
    slowest = { name, ms: us / 1000 };
  }
  return { count: entries.length, slowest };
}

/** processedOn - timestamp of every job, once each has been taken by a worker. */
async function timesInQueue(admin: Redis, keyPrefix: string, ids: string[]): Promise<number[]> {
  const read = async () => {
    const pipeline = admin.pipeline();
    for (const id of ids) pipeline.hmget(`${keyPrefix}:${queueName}:${id}`, 'timestamp', 'processedOn');
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([, reply]) => reply as [string | null, string | null]);
  };
  const replies = await waitFor(
    async () => {
      const r = await read();
      return r.every(([, processedOn]) => processedOn !== null) ? r : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200, what: 'every submitted job taken by a worker' },
  );
  return replies.map(([timestamp, processedOn]) => Number(processedOn) - Number(timestamp));
}

interface Fixture {
  managers: { exporter: number; plain: number };
  managerPids: { exporter: number; plain: number };
  jobbersQueue: Queue;
  bullQueue: Queue;
  agent: http.Agent;
  stop(): Promise<void>;
}

async function startFixture(settings: LatencySettings): Promise<Fixture> {
  const env = { REDIS_URL: settings.redisUrl, JOBBERS_PREFIX: prefix, JOBBERS_TASKS: '@jobbers/examples' };
  const processes: RunningProcess[] = [];
  const bullWorker = new Worker(queueName, async () => undefined, {
    connection: settings.admin.duplicate(),
    prefix: bullPrefix,
    concurrency: settings.concurrency,
  });
  const jobbersQueue = new Queue(queueName, { connection: settings.admin.duplicate(), prefix });
  const bullQueue = new Queue(queueName, { connection: settings.admin.duplicate(), prefix: bullPrefix });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let profiled: RunningProcess | undefined;
  const stop = async () => {
    agent.destroy();
    // The profile is written when the manager exits of itself (SIGTERM), not when it is killed.
    if (profiled) {
      profiled.kill('SIGTERM');
      await Promise.race([profiled.exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    }
    for (const p of processes.reverse()) await p.stop();
    await Promise.all([bullWorker.close(), jobbersQueue.close(), bullQueue.close()]);
  };
  try {
    const ports = { exporter: await freePort(), plain: await freePort() };
    const quiet = { LOG_LEVEL: 'info' };
    // BENCH_LATENCY_PROFILE=<dir>: the manager with the exporter writes a V8 CPU profile there.
    const profileDir = process.env.BENCH_LATENCY_PROFILE;
    const withExporter = startProcess(
      bins.manager,
      [],
      { ...env, ...quiet, MANAGER_PORT: String(ports.exporter) },
      profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    );
    if (profileDir) profiled = withExporter;
    const plain = startProcess(bins.manager, [], {
      ...env,
      ...quiet,
      MANAGER_PORT: String(ports.plain),
      JOBBERS_EXPORTER: 'off',
    });
    processes.push(withExporter, plain);
    processes.push(
      startProcess(bins.worker, [], {
        ...env,
        WORKER_CONCURRENT_TASKS: String(settings.concurrency),
        WORKER_METRICS_PORT: '0',
      }),
    );
    for (const port of Object.values(ports))
      await waitFor(() => fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok), {
        timeoutMs: 30_000,
        what: 'the manager ready',
      });
    await waitFor(
      async () => (await settings.admin.hget(`${prefix}:${queueName}:jobbers:exporter`, 'pos')) !== null,
      {
        timeoutMs: 30_000,
        what: "the manager's exporter counted",
      },
    );
    const managerPids = { exporter: withExporter.child.pid!, plain: plain.child.pid! };
    return { managers: ports, managerPids, jobbersQueue, bullQueue, agent, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function runOnce(
  fixture: Fixture,
  settings: LatencySettings,
  variant: LatencyVariant,
  round: number,
): Promise<LatencyRun> {
  const ids: string[] = [];
  const responses: number[] = [];
  let errors = 0;
  const restPort = variant === 'rest' ? fixture.managers.exporter : fixture.managers.plain;
  const body = JSON.stringify({ task: 'example.echo', params: { hello: 'bench' } });
  const submit = async () => {
    try {
      if (variant === 'rest' || variant === 'rest, exporter in another manager') {
        const startedAt = performance.now();
        const { status, text } = await post(fixture.agent, restPort, body);
        responses.push(performance.now() - startedAt);
        if (status !== 201) throw new Error(`status ${status}: ${text}`);
        ids.push((JSON.parse(text) as { id: string }).id);
      } else {
        const queue = variant === 'queue.add -> bullmq worker' ? fixture.bullQueue : fixture.jobbersQueue;
        const job = await queue.add('example.echo', { params: { hello: 'bench' } });
        ids.push(job.id!);
      }
    } catch {
      errors++;
    }
  };
  const other = variant === 'rest, exporter in another manager';
  const lagPort = other ? restPort : fixture.managers.exporter;
  const managerPid = other ? fixture.managerPids.plain : fixture.managerPids.exporter;
  const before = await scrapeManager(lagPort);
  await settings.admin.slowlog('RESET');
  const cpuBefore = processCpuUs(managerPid);
  const { sent, achievedRate } = await atFixedRate(settings.rate, settings.seconds, submit);
  const managerCpuUsPerSubmission = (processCpuUs(managerPid) - cpuBefore) / sent;
  const redisSlow = await slowCommands(settings.admin);
  const after = await scrapeManager(lagPort);
  const gcCount = after.gc.count - before.gc.count;
  const keyPrefix = variant === 'queue.add -> bullmq worker' ? bullPrefix : prefix;
  const waits = await timesInQueue(settings.admin, keyPrefix, ids);
  return {
    variant,
    round,
    submitted: sent,
    achievedRate,
    timeInQueueMs: summarize(waits),
    responseMs: responses.length > 0 ? summarize(responses) : undefined,
    managerLoopDelayP99Ms: after.loopDelayP99Ms,
    managerCpuUsPerSubmission,
    managerGc: {
      count: gcCount,
      totalMs: (after.gc.seconds - before.gc.seconds) * 1000,
      over10Ms: gcCount - (after.gc.within10Ms - before.gc.within10Ms),
    },
    redisSlow,
    errors,
  };
}

/** Every variant once per round, in an order that rotates, so slow drifts of the machine spread evenly. */
export async function runLatencyBench(
  settings: LatencySettings,
  report: (run: LatencyRun) => void,
): Promise<LatencyRun[]> {
  await settings.admin.flushall();
  const slowlogWas = (await settings.admin.config('GET', 'slowlog-log-slower-than')) as string[];
  await settings.admin.config('SET', 'slowlog-log-slower-than', String(slowCommandUs));
  await settings.admin.config('SET', 'slowlog-max-len', '10000');
  const fixture = await startFixture(settings);
  const runs: LatencyRun[] = [];
  try {
    // Warm-up: a second of each, not counted (JIT, connections, script loading).
    for (const variant of latencyVariants) await runOnce(fixture, { ...settings, seconds: 1 }, variant, 0);
    for (let round = 1; round <= settings.rounds; round++) {
      const shift = (round - 1) % latencyVariants.length;
      const order = [...latencyVariants.slice(shift), ...latencyVariants.slice(0, shift)];
      for (const variant of order) {
        const run = await runOnce(fixture, settings, variant, round);
        runs.push(run);
        report(run);
      }
    }
  } finally {
    await fixture.stop();
    await settings.admin.flushall();
    await settings.admin.config('SET', 'slowlog-log-slower-than', slowlogWas[1] ?? '10000');
  }
  return runs;
}
