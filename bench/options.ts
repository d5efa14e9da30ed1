// Bench options: flags win over env vars, env vars over defaults; parsed once, validated here.
import { parseArgs } from 'node:util';
import { type LayoutName, layoutNames } from './layout.js';

export const sectionNames = [
  'drain',
  'cost',
  'rest',
  'lag',
  'recount',
  'latency',
  'console',
  'cluster',
  'workflow',
] as const;
export type SectionName = (typeof sectionNames)[number];

export const variantNames = ['bullmq', 'jobbers', 'jobbers+exporter', 'jobbers+exporter-process'] as const;
export type VariantName = (typeof variantNames)[number];

export interface BenchOptions {
  sections: SectionName[];
  /** Drain variants to interleave (all by default; one alone is handy under --cpu-prof). */
  variants: VariantName[];
  /** No-op jobs drained per run. */
  jobs: number;
  /** Concurrency of both the Jobbers and the bare BullMQ worker. */
  concurrency: number;
  /** Interleaved rounds; each round runs every drain variant once. */
  rounds: number;
  /**
   * Drain layouts, each a drain of its own: pinned (the worker on core 0, redis-server and the
   * exporter's process at idle priority on the last core: a manager with CPU of its own) and shared
   * (the OS places everything at default priority: one box, as `npm start` or compose run it).
   */
  layouts: LayoutName[];
  restSeconds: number;
  /** Interleaved rounds of the REST variants. */
  restRounds: number;
  restConnections: number;
  batchSize: number;
  lagSeconds: number;
  /** Echo jobs submitted per second during the lag run (~4 stream events each). */
  lagRate: number;
  lagSampleMs: number;
  /** Replays of the recorded prefill and drain in the exporter-cost section. */
  costRepeats: number;
  /** Waiting tasks enqueued before the manager starts, in the recount section. */
  recountJobs: number;
  /** How long the recount section waits for an exact gauge before it reports what it read. */
  recountTimeoutSeconds: number;
  /** Single submissions per second in the latency section. */
  latencyRate: number;
  /** Seconds of submissions per latency run. */
  latencySeconds: number;
  /** Interleaved rounds of the latency variants. */
  latencyRounds: number;
  /** No-op tasks per drain in the cluster section. */
  clusterJobs: number;
  /** Interleaved rounds of 1 master vs 3 masters in the cluster section. */
  clusterRounds: number;
  /** Squares fanned out and merged in the workflow section. */
  workflowNodes: number;
}

const numericFlags = {
  jobs: { env: 'BENCH_JOBS', fallback: 20_000, min: 100 },
  concurrency: { env: 'BENCH_CONCURRENCY', fallback: 50, min: 1 },
  rounds: { env: 'BENCH_ROUNDS', fallback: 6, min: 1 },
  'rest-seconds': { env: 'BENCH_REST_SECONDS', fallback: 8, min: 1 },
  'rest-rounds': { env: 'BENCH_REST_ROUNDS', fallback: 3, min: 1 },
  'rest-connections': { env: 'BENCH_REST_CONNECTIONS', fallback: 50, min: 1 },
  'batch-size': { env: 'BENCH_BATCH_SIZE', fallback: 500, min: 1 },
  'lag-seconds': { env: 'BENCH_LAG_SECONDS', fallback: 20, min: 1 },
  'lag-rate': { env: 'BENCH_LAG_RATE', fallback: 1250, min: 1 },
  'lag-sample-ms': { env: 'BENCH_LAG_SAMPLE_MS', fallback: 50, min: 5 },
  'cost-repeats': { env: 'BENCH_COST_REPEATS', fallback: 5, min: 1 },
  'recount-jobs': { env: 'BENCH_RECOUNT_JOBS', fallback: 1_000_000, min: 3 },
  'recount-timeout': { env: 'BENCH_RECOUNT_TIMEOUT', fallback: 90, min: 1 },
  'latency-rate': { env: 'BENCH_LATENCY_RATE', fallback: 1000, min: 1 },
  'latency-seconds': { env: 'BENCH_LATENCY_SECONDS', fallback: 5, min: 1 },
  'latency-rounds': { env: 'BENCH_LATENCY_ROUNDS', fallback: 3, min: 1 },
  'cluster-jobs': { env: 'BENCH_CLUSTER_JOBS', fallback: 12_000, min: 100 },
  'cluster-rounds': { env: 'BENCH_CLUSTER_ROUNDS', fallback: 3, min: 1 },
  'workflow-nodes': { env: 'BENCH_WORKFLOW_NODES', fallback: 1000, min: 1 },
} as const;

type NumericFlag = keyof typeof numericFlags;

export const usage = `npm run bench -- [flags]   (each flag also reads the env var shown)
  --only drain,cost,rest,lag,recount,latency,console,cluster,workflow  sections to run (BENCH_ONLY;
                          default all)
  --variants LIST         drain variants, of bullmq,jobbers,jobbers+exporter,jobbers+exporter-process
                          (BENCH_VARIANTS; default all)
  --jobs N                no-op jobs per drain run (BENCH_JOBS; default 20000)
  --concurrency N         worker concurrency, both workers (BENCH_CONCURRENCY; default 50)
  --rounds N              interleaved drain rounds (BENCH_ROUNDS; default 6)
  --layout pinned,shared  drain layouts, each drained in full: pinned puts the worker on core 0 and
                          redis-server with the exporter's process (idle priority) on the last core;
                          shared lets the OS place every process at default priority, as one box
                          running npm start does (BENCH_LAYOUT; default both; pinned falls back to
                          shared where taskset/chrt are missing)
  --rest-seconds N        duration of each REST load (BENCH_REST_SECONDS; default 8)
  --rest-rounds N         interleaved rounds of the REST variants (BENCH_REST_ROUNDS; default 3)
  --rest-connections N    autocannon connections (BENCH_REST_CONNECTIONS; default 50)
  --batch-size N          tasks per POST /v1/tasks/batch (BENCH_BATCH_SIZE; default 500)
  --lag-seconds N         duration of the exporter-lag load (BENCH_LAG_SECONDS; default 20)
  --lag-rate N            echo jobs submitted per second in the lag load (BENCH_LAG_RATE; default 1250)
  --lag-sample-ms N       lag sampling interval (BENCH_LAG_SAMPLE_MS; default 50)
  --cost-repeats N        replays of the recorded jobs in the exporter-cost section
                          (BENCH_COST_REPEATS; default 5; the jobs are --jobs)
  --recount-jobs N        waiting tasks (3 types) a cold manager recounts (BENCH_RECOUNT_JOBS;
                          default 1000000)
  --recount-timeout N     seconds the recount section waits for an exact gauge
                          (BENCH_RECOUNT_TIMEOUT; default 90)
  --latency-rate N        single submissions per second in the latency section
                          (BENCH_LATENCY_RATE; default 1000)
  --latency-seconds N     seconds per latency run (BENCH_LATENCY_SECONDS; default 5; at most 60)
  --latency-rounds N      interleaved rounds of the latency variants (BENCH_LATENCY_ROUNDS; default 3)
  --cluster-jobs N        no-op tasks per drain on Redis Cluster, 1 vs 3 masters (BENCH_CLUSTER_JOBS;
                          default 12000)
  --cluster-rounds N      interleaved rounds of 1 vs 3 masters (BENCH_CLUSTER_ROUNDS; default 3)
  --workflow-nodes N      squares a workflow fans out and merges, against the same submitted flat
                          (BENCH_WORKFLOW_NODES; default 1000)
  --help`;

function readNumber(flag: NumericFlag, raw: string | undefined, problems: string[]): number {
  const spec = numericFlags[flag];
  const value = raw ?? process.env[spec.env];
  if (value === undefined || value.trim() === '') return spec.fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < spec.min) {
    problems.push(`--${flag} / ${spec.env} = "${value}" must be a whole number >= ${spec.min}`);
    return spec.fallback;
  }
  return parsed;
}

function readList<T extends string>(
  flag: string,
  env: string,
  known: readonly T[],
  raw: string | undefined,
  problems: string[],
): T[] {
  const value = raw ?? process.env[env];
  if (!value?.trim()) return [...known];
  const wanted = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const name of wanted) {
    if (!known.includes(name as T))
      problems.push(`--${flag} / ${env}: unknown value "${name}" (known: ${known.join(', ')})`);
  }
  return known.filter((s) => wanted.includes(s));
}

export function parseBenchOptions(argv: string[]): BenchOptions | 'help' {
  const { values: parsed } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean' },
      only: { type: 'string' },
      variants: { type: 'string' },
      layout: { type: 'string' },
      ...Object.fromEntries(Object.keys(numericFlags).map((k) => [k, { type: 'string' as const }])),
    },
    strict: true,
  });
  const values = parsed as Record<string, string | boolean | undefined>;
  if (values.help) return 'help';
  const problems: string[] = [];
  const flag = (name: NumericFlag) => readNumber(name, values[name] as string | undefined, problems);
  const options: BenchOptions = {
    sections: readList('only', 'BENCH_ONLY', sectionNames, values.only as string | undefined, problems),
    variants: readList(
      'variants',
      'BENCH_VARIANTS',
      variantNames,
      values.variants as string | undefined,
      problems,
    ),
    jobs: flag('jobs'),
    concurrency: flag('concurrency'),
    rounds: flag('rounds'),
    layouts: readList('layout', 'BENCH_LAYOUT', layoutNames, values.layout as string | undefined, problems),
    restSeconds: flag('rest-seconds'),
    restRounds: flag('rest-rounds'),
    restConnections: flag('rest-connections'),
    batchSize: flag('batch-size'),
    lagSeconds: flag('lag-seconds'),
    lagRate: flag('lag-rate'),
    lagSampleMs: flag('lag-sample-ms'),
    costRepeats: flag('cost-repeats'),
    recountJobs: flag('recount-jobs'),
    recountTimeoutSeconds: flag('recount-timeout'),
    latencyRate: flag('latency-rate'),
    latencySeconds: flag('latency-seconds'),
    latencyRounds: flag('latency-rounds'),
    clusterJobs: flag('cluster-jobs'),
    clusterRounds: flag('cluster-rounds'),
    workflowNodes: flag('workflow-nodes'),
  };
  if (options.batchSize > 1000) problems.push('--batch-size must be <= 1000 (the API batch limit)');
  if (options.latencySeconds > 60) problems.push('--latency-seconds must be <= 60');
  if (problems.length > 0) throw new Error(`invalid bench options:\n  - ${problems.join('\n  - ')}`);
  return options;
}
