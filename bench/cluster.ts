// Scale-out on Redis Cluster: the same drain (no-op tasks over six queues, each queue a slot of its
// own) on a cluster of 1 master and on one of 3 masters, interleaved. Reports jobs/s and, per node,
// its share of Redis commands (INFO commandstats) and the Redis CPU it spent per job, from which the
// throughput Redis would allow with one core per node follows.

import { cpus } from 'node:os';
import {
  createRedisConnection,
  defineTask,
  execPerNode,
  JobbersError,
  jobKey,
  keyPrefix,
  loadWorkerConfig,
  parseRoles,
  queueKey,
  TaskClient,
  TaskRegistry,
  waitForRedis,
} from '@jobbers/core';
import { JobbersWorker } from '@jobbers/worker';
import { Redis } from 'ioredis';
import { pino } from 'pino';
// @ts-expect-error the script is plain JavaScript, without declarations
import { startLocalRedisCluster } from '../scripts/local-redis-cluster.mjs';
import { formatRate, median, table } from './stats.js';

const queues = ['b0', 'b1', 'b2', 'b3', 'b4', 'b5'];
const noop = defineTask({
  name: 'bench.cluster-noop',
  queue: queues[0]!,
  queues: queues.slice(1),
  params: { type: 'object' },
  run: async () => {},
});
const registry = new TaskRegistry([noop]);
const silentLogger = pino({ level: 'silent' });

interface LocalCluster {
  url: string;
  nodes: { port: number }[];
  stop(): Promise<void>;
}

export interface ClusterBenchOptions {
  jobs: number;
  rounds: number;
  concurrency: number;
}

interface NodeUsage {
  port: number;
  calls: number;
  cpuSeconds: number;
}

export interface ClusterRun {
  masters: number;
  round: number;
  jobsPerSecond: number;
  nodes: NodeUsage[];
}

async function nodeClient(port: number): Promise<Redis> {
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** Commands served and CPU used so far, per node, from INFO commandstats and INFO cpu. */
async function nodeUsage(cluster: LocalCluster): Promise<NodeUsage[]> {
  return Promise.all(
    cluster.nodes.map(async ({ port }) => {
      const client = await nodeClient(port);
      try {
        const stats = await client.info('commandstats');
        const cpu = await client.info('cpu');
        const calls = [...stats.matchAll(/calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
        const seconds = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
        return { port, calls, cpuSeconds: seconds('used_cpu_sys') + seconds('used_cpu_user') };
      } finally {
        client.disconnect();
      }
    }),
  );
}

async function drainOnce(
  cluster: LocalCluster,
  masters: number,
  round: number,
  options: ClusterBenchOptions,
) {
  const prefix = keyPrefix(cluster.url, `bench-cluster-${masters}-${process.pid}-${round}`);
  const connection = createRedisConnection(cluster.url, {
    connectionName: 'bench-cluster-prefill',
    commandTimeoutMs: 60_000,
  });
  connection.on('error', () => {});
  await waitForRedis(connection, 10_000);
  const client = new TaskClient({ connection, prefix, registry });
  const ids: { id: string; queue: string }[] = [];
  for (let done = 0; done < options.jobs; ) {
    const size = Math.min(600, options.jobs - done);
    const batch = Array.from({ length: size }, (_, i) => ({
      task: noop.name,
      queue: queues[(done + i) % queues.length]!,
      params: {},
    }));
    for (const result of await client.submitBatch(batch)) ids.push({ id: result.id, queue: result.queue });
    done += size;
  }
  const before = await nodeUsage(cluster);
  const config = loadWorkerConfig({
    REDIS_URL: cluster.url,
    JOBBERS_PREFIX: prefix.slice(0, -2),
    JOBBERS_TASKS: 'bench (registry built in bench/cluster.ts)',
    WORKER_CONCURRENT_TASKS: String(options.concurrency),
    WORKER_METRICS_PORT: '0',
  });
  if (config.prefix !== prefix)
    throw new JobbersError('CONFIG_INVALID', `prefix ${config.prefix} is not ${prefix}`);
  const worker = new JobbersWorker({
    config,
    registry,
    roles: parseRoles(undefined, registry),
    logger: silentLogger,
  });
  await worker.start();
  const deadline = Date.now() + 300_000;
  for (;;) {
    const completed = await execPerNode(
      connection,
      queues.map((queue) => {
        const key = `${queueKey(prefix, queue)}:completed`;
        return { key, add: (p) => p.zcard(key) };
      }),
    );
    if (completed.reduce((sum: number, n) => sum + Number(n), 0) >= options.jobs) break;
    if (Date.now() > deadline) throw new Error('the cluster drain did not finish within 300 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const after = await nodeUsage(cluster);
  await worker.stop();
  const times = await execPerNode(
    connection,
    ids.map(({ id, queue }) => {
      const key = jobKey(prefix, queue, id);
      return { key, add: (p) => p.hmget(key, 'processedOn', 'finishedOn') };
    }),
  );
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (const value of times) {
    const [processedOn, finishedOn] = (value as string[]).map(Number);
    first = Math.min(first, processedOn!);
    last = Math.max(last, finishedOn!);
  }
  await client.close();
  await connection.quit().catch(() => {});
  const nodes = after.map((node, i) => ({
    port: node.port,
    calls: node.calls - before[i]!.calls,
    cpuSeconds: node.cpuSeconds - before[i]!.cpuSeconds,
  }));
  return { masters, round, jobsPerSecond: (options.jobs * 1000) / Math.max(1, last - first), nodes };
}

/** The interleaved runs and the lines that report them. */
export async function runClusterBench(
  options: ClusterBenchOptions,
): Promise<{ runs: ClusterRun[]; lines: string[] }> {
  const clusters = new Map<number, LocalCluster>();
  try {
    for (const masters of [1, 3])
      clusters.set(masters, await startLocalRedisCluster({ masters, replicas: 0 }));
    const runs: ClusterRun[] = [];
    for (let round = 1; round <= options.rounds; round++) {
      const order = round % 2 === 1 ? [1, 3] : [3, 1];
      for (const masters of order)
        runs.push(await drainOnce(clusters.get(masters)!, masters, round, options));
    }
    return { runs, lines: report(runs, options) };
  } finally {
    for (const cluster of clusters.values()) await cluster.stop();
  }
}

function report(runs: ClusterRun[], options: ClusterBenchOptions): string[] {
  const lines: string[] = [];
  const rows: string[][] = [];
  const ceilings = new Map<number, number>();
  for (const masters of [1, 3]) {
    const mine = runs.filter((r) => r.masters === masters);
    const rates = mine.map((r) => r.jobsPerSecond);
    const shares = mine[0]!.nodes.map((_, i) => {
      const calls = median(mine.map((r) => r.nodes[i]!.calls / r.nodes.reduce((s, n) => s + n.calls, 0)));
      const cpuUsPerJob = median(mine.map((r) => (r.nodes[i]!.cpuSeconds * 1e6) / options.jobs));
      return { calls, cpuUsPerJob };
    });
    // With one core per node, Redis allows at most what its busiest node can serve.
    const busiestUsPerJob = Math.max(...shares.map((s) => s.cpuUsPerJob));
    ceilings.set(masters, 1e6 / busiestUsPerJob);
    rows.push([
      `${masters} master${masters > 1 ? 's' : ''}`,
      formatRate(median(rates)),
      rates.map((r) => formatRate(r)).join(' '),
      shares.map((s) => `${(s.calls * 100).toFixed(0)}%`).join(' / '),
      shares.map((s) => s.cpuUsPerJob.toFixed(0)).join(' / '),
      formatRate(1e6 / busiestUsPerJob),
    ]);
  }
  lines.push(
    table(
      [
        'cluster',
        'jobs/s (median)',
        'runs',
        'commands per node',
        'Redis CPU us/job per node',
        'Redis ceiling, 1 core/node',
      ],
      rows,
    ),
  );
  const gain = ceilings.get(3)! / ceilings.get(1)!;
  const measured =
    median(runs.filter((r) => r.masters === 3).map((r) => r.jobsPerSecond)) /
    median(runs.filter((r) => r.masters === 1).map((r) => r.jobsPerSecond));
  lines.push(
    `${options.jobs} no-op tasks over ${queues.length} queues, one in-process worker (concurrency ${options.concurrency}), ` +
      `${options.rounds} interleaved rounds.`,
    `Measured: 3 masters drained at ${measured.toFixed(2)}x the rate of 1 master. Here every redis-server and the worker ` +
      `share this machine's ${cpus().length} cores, so the figure is bounded by the cores, not by Redis: 3 masters ` +
      'cannot each get a core of their own.',
    `Predicted from each node's Redis CPU per job: with one core per node, 1 master serves at most ` +
      `${formatRate(ceilings.get(1)!)} jobs/s and 3 masters ${formatRate(ceilings.get(3)!)} jobs/s (their busiest node ` +
      `bounds them): ${gain.toFixed(1)}x, given workers enough to feed them.`,
  );
  return lines;
}
