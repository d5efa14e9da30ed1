// Exporter lag under load: echo jobs submitted at a steady rate (about 4 stream events each:
// added, waiting, active, completed) and drained by a real jobbers-worker process, while the
// lifecycle exporter runs here, as it runs in jobbers-manager. Every sample reads, in one Lua call,
// Redis's clock, the exporter's persisted position and the stream entries around it.
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { exporterStateKey, loadTasks, readAvailableByTask, TaskClient } from '@jobbers/core';
import type { Redis } from 'ioredis';
import { startManagerExporter } from './manager-exporter.js';
import { percentile } from './stats.js';

export interface LagSettings {
  redisUrl: string;
  admin: Redis;
  seconds: number;
  /** Echo jobs submitted per second. */
  rate: number;
  sampleMs: number;
  concurrency: number;
}

export interface LagResult {
  seconds: number;
  jobsSubmitted: number;
  jobsPerSecond: number;
  eventsPerSecond: number;
  samples: number;
  /** Age of the oldest event the exporter had not applied yet (0 when caught up). */
  pendingAgeMs: { p50: number; p99: number; max: number };
  recounts: number;
  /** After the load stopped: from the last completion until the exporter had applied everything. */
  catchUpAfterLoadMs: number;
  /** The available gauge once quiet (should be 0 for every task: the queue is drained). */
  availableAfter: Record<string, number>;
}

const queue = 'default';

// KEYS[1] exporter state hash, KEYS[2] event stream. Returns now (ms), pos, newest id, next id after pos.
const sampleScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pos = redis.call('HGET', KEYS[1], 'pos')
local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local nextAfter = {}
if pos then nextAfter = redis.call('XRANGE', KEYS[2], '(' .. pos, '+', 'COUNT', 1) end
return {tostring(now), pos or '', newest[1] and newest[1][1] or '', nextAfter[1] and nextAfter[1][1] or ''}
`;

const msOf = (id: string) => Number(id.split('-')[0]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function summarize(values: number[]) {
  return { p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(0, ...values) };
}

/** The real jobbers-worker binary, as deployed: one process, the examples module. */
async function startWorkerProcess(settings: LagSettings, prefix: string): Promise<ChildProcess> {
  const require = createRequire(import.meta.url);
  const bin = path.join(path.dirname(require.resolve('@jobbers/worker')), 'bin.js');
  const child = spawn(process.execPath, [bin], {
    env: {
      ...process.env,
      REDIS_URL: settings.redisUrl,
      JOBBERS_PREFIX: prefix,
      JOBBERS_TASKS: '@jobbers/examples',
      WORKER_CONCURRENT_TASKS: String(settings.concurrency),
      WORKER_METRICS_PORT: '0',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`jobbers-worker did not start: ${output}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`jobbers-worker exited with ${code}: ${output}`)));
    child.stderr!.on('data', (d) => (output += d));
    child.stdout!.on('data', (d) => {
      output += d;
      if (output.includes('worker started')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  child.removeAllListeners('exit');
  return child;
}

async function stopWorkerProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const killed = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(killed);
}

async function entriesAdded(admin: Redis, stream: string): Promise<number> {
  try {
    const info = (await admin.xinfo('STREAM', stream)) as unknown[];
    const at = info.indexOf('entries-added');
    return at >= 0 ? Number(info[at + 1]) : 0;
  } catch {
    return 0;
  }
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export async function runExporterLagBench(settings: LagSettings): Promise<LagResult> {
  const prefix = `bench-lag-${process.pid}`;
  const registry = await loadTasks('@jobbers/examples');
  const manager = await startManagerExporter(settings.redisUrl, prefix, registry, 'bench-lag-manager');
  const { connection, exporter } = manager;
  const sampler = settings.admin.duplicate();
  const stateKey = exporterStateKey(prefix, queue);
  const stream = `${prefix}:${queue}:events`;
  const client = new TaskClient({ connection, prefix, registry });
  let worker: ChildProcess | undefined;
  try {
    worker = await startWorkerProcess(settings, prefix);
    const recountsBefore = Number((await settings.admin.hget(stateKey, 'recounts')) ?? 0);
    const addedBefore = await entriesAdded(settings.admin, stream);

    const pendingAge: number[] = [];
    let sampling = true;
    const samplingDone = (async () => {
      while (sampling) {
        const [now, , , next] = (await sampler.eval(sampleScript, 2, stateKey, stream)) as string[];
        pendingAge.push(next ? Math.max(0, Number(now) - msOf(next)) : 0);
        await sleep(settings.sampleMs);
      }
    })();

    const startedAt = Date.now();
    const durationMs = settings.seconds * 1000;
    let submitted = 0;
    for (let elapsed = 0; elapsed < durationMs; elapsed = Date.now() - startedAt) {
      const due = Math.min(1000, Math.floor((elapsed / 1000) * settings.rate) - submitted);
      if (due > 0) {
        await client.submitBatch(
          Array.from({ length: due }, (_, i) => ({ task: 'example.echo', params: { n: submitted + i } })),
        );
        submitted += due;
      }
      await sleep(20);
    }
    const loadSeconds = (Date.now() - startedAt) / 1000;
    const addedAfterLoad = await entriesAdded(settings.admin, stream);
    sampling = false;
    await samplingDone;

    const completedKey = `${prefix}:${queue}:completed`;
    await waitUntil('the worker to drain the lag load', 60_000, async () => {
      return (await settings.admin.zcard(completedKey)) >= submitted;
    });
    const lastCompletion = Number((await settings.admin.zrange(completedKey, -1, -1, 'WITHSCORES'))[1]);
    await exporter.waitUntilCaughtUp(60_000);
    const catchUpAfterLoadMs = Math.max(0, Date.now() - lastCompletion);
    const recountsAfter = Number((await settings.admin.hget(stateKey, 'recounts')) ?? 0);
    const available = await readAvailableByTask(settings.admin, prefix, queue);

    return {
      seconds: loadSeconds,
      jobsSubmitted: submitted,
      jobsPerSecond: submitted / loadSeconds,
      eventsPerSecond: (addedAfterLoad - addedBefore) / loadSeconds,
      samples: pendingAge.length,
      pendingAgeMs: summarize(pendingAge),
      recounts: recountsAfter - recountsBefore,
      catchUpAfterLoadMs,
      availableAfter: Object.fromEntries(available.available ?? []),
    };
  } finally {
    if (worker) await stopWorkerProcess(worker);
    await client.close();
    await manager.stop();
    sampler.disconnect();
    await settings.admin.flushall();
  }
}
