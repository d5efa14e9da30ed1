// REST submit throughput: a real jobbers-manager process (production defaults: validation, the id
// check, the exporter, request logging at info) against the baseline of bench/minimal-route.ts, a
// Fastify process that only calls queue.add / addBulk, on the same Redis. Single submissions and
// batches, every variant once per round in a rotating order; autocannon runs in a worker thread of
// the bench process. Each run starts its server afresh on a fresh prefix, warms it up for a second,
// then loads it; the server's CPU time per request (from /proc) is the figure noise moves least.
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import type { Redis } from 'ioredis';
import { bins, type RunningProcess, repoRoot, startProcess } from '../test/support/processes.js';
import { uniquePrefix } from '../test/support/redis-server.js';
import { waitFor } from '../test/support/wait.js';
import { roundOrder } from './drain.js';

export const restVariants = ['jobbers single', 'baseline single', 'jobbers batch', 'baseline batch'] as const;
export type RestVariant = (typeof restVariants)[number];

export interface RestSettings {
  redisUrl: string;
  admin: Redis;
  seconds: number;
  connections: number;
  batchSize: number;
  rounds: number;
}

export interface RestRun {
  round: number;
  variant: RestVariant;
  route: string;
  tasksPerRequest: number;
  requestsPerSecond: number;
  tasksPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  non2xx: number;
  errors: number;
  /** Jobs found in the queue afterwards; should equal ok * tasksPerRequest (plus those in flight). */
  enqueued: number;
  /** The server process's CPU time (user + system) per request during the load, in us. */
  serverCpuUsPerRequest: number;
}

function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

async function startServer(variant: RestVariant, redisUrl: string, prefix: string) {
  const env = { REDIS_URL: redisUrl, JOBBERS_PREFIX: prefix };
  let proc: RunningProcess;
  let baseUrl = '';
  if (variant.startsWith('jobbers')) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    proc = startProcess(bins.manager, [], {
      ...env,
      JOBBERS_TASKS: '@jobbers/examples',
      MANAGER_HOST: '127.0.0.1',
      MANAGER_PORT: String(port),
    });
    baseUrl = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${baseUrl}/readyz`).catch(() => undefined))?.ok === true, {
      timeoutMs: 30_000,
      what: 'the manager to be ready',
    });
  } else {
    proc = startProcess('--import', ['tsx', `${repoRoot}bench/minimal-route.ts`], { ...env, PORT: '0' });
    await proc.waitForOutput(/listening \d+/, 30_000);
    baseUrl = `http://127.0.0.1:${/listening (\d+)/.exec(proc.output())![1]}`;
  }
  return { proc, baseUrl };
}

function loadOnce(url: string, body: string, settings: RestSettings, seconds: number) {
  return autocannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    connections: settings.connections,
    duration: seconds,
    workers: 1,
    timeout: 10,
  });
}

async function runOnce(settings: RestSettings, variant: RestVariant, round: number): Promise<RestRun> {
  const prefix = uniquePrefix('bench-rest');
  const batch = variant.endsWith('batch');
  const route = batch ? '/v1/tasks/batch' : '/v1/tasks';
  const body = JSON.stringify(
    batch
      ? {
          tasks: Array.from({ length: settings.batchSize }, (_, i) => ({
            task: 'example.echo',
            params: { i },
          })),
        }
      : { task: 'example.echo', params: { hello: 'bench' } },
  );
  const { proc, baseUrl } = await startServer(variant, settings.redisUrl, prefix);
  try {
    await loadOnce(`${baseUrl}${route}`, body, settings, 1);
    // Requests of the warm-up still in flight when it stopped land afterwards: wait until they have.
    const waitKey = `${prefix}:default:wait`;
    let before = await settings.admin.llen(waitKey);
    for (let settled = false; !settled; ) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const now = await settings.admin.llen(waitKey);
      settled = now === before;
      before = now;
    }
    const cpuBefore = cpuMsOf(proc.child.pid!);
    const result = await loadOnce(`${baseUrl}${route}`, body, settings, settings.seconds);
    const cpuMs = cpuMsOf(proc.child.pid!) - cpuBefore;
    const tasksPerRequest = batch ? settings.batchSize : 1;
    const ok = result['2xx'];
    return {
      round,
      variant,
      route,
      tasksPerRequest,
      requestsPerSecond: ok / result.duration,
      tasksPerSecond: (ok * tasksPerRequest) / result.duration,
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      ok,
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts,
      enqueued: (await settings.admin.llen(waitKey)) - before,
      serverCpuUsPerRequest: ok > 0 ? (cpuMs * 1000) / ok : 0,
    };
  } finally {
    await proc.stop();
    await settings.admin.flushall();
  }
}

/** Every variant once per round, the order rotated each round; `onRun` sees each run as it ends. */
export async function runRestBench(
  settings: RestSettings,
  onRun: (run: RestRun) => void = () => {},
): Promise<RestRun[]> {
  const runs: RestRun[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    for (const variant of roundOrder(restVariants, round - 1)) {
      const run = await runOnce(settings, variant, round);
      runs.push(run);
      onRun(run);
    }
  }
  return runs;
}
