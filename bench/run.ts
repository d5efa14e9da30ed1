// npm run bench: drain throughput (Jobbers vs bare BullMQ, metrics on vs off), the exporter's own
// cost, REST submit throughput and exporter lag, against a private redis-server. Never part of
// `npm test`.
import { Redis } from 'ioredis';
import { startRedisServer } from '../test/support/redis-server.js';
import { runClusterBench } from './cluster.js';
import { type ConsoleRun, runConsoleBench } from './console.js';
import { type DrainRun, type DrainSettings, drainOnce, roundOrder } from './drain.js';
import { describeEnvironment, describeLoad, machineIsBusy } from './environment.js';
import { type CostReplay, costReaders, runExporterCostBench } from './exporter-cost.js';
import { runExporterLagBench } from './exporter-lag.js';
import { type LatencyRun, latencyVariants, runLatencyBench } from './latency.js';
import {
  cpusOf,
  idlePriorityUnavailable,
  type LayoutName,
  pinnedPlan,
  pinningUnavailable,
  pinProcess,
} from './layout.js';
import { type BenchOptions, parseBenchOptions, usage, type VariantName } from './options.js';
import { type RecountBenchResult, runRecountBench } from './recount.js';
import { type RestVariant, restVariants, runRestBench } from './rest.js';
import {
  formatMs,
  formatRate,
  formatRatio,
  median,
  medianInterval,
  percentile,
  settledVerdict,
  table,
  verdict,
} from './stats.js';
import { runWorkflowBench, type WorkflowRun } from './workflow.js';

const throughputTarget = 0.9;
const lagP99TargetMs = 1000;

const print = (line = '') => process.stdout.write(`${line}\n`);

function heading(title: string) {
  print();
  print(`== ${title}`);
}

/**
 * Places the drain's processes (layout.ts) and answers the settings to drain with, a line saying
 * where everything runs, and how to undo the pinning.
 */
function placeDrain(layout: LayoutName, settings: DrainSettings, redisPid: number) {
  const idleProblem = idlePriorityUnavailable();
  const pinProblem = layout === 'pinned' ? pinningUnavailable() : undefined;
  if (layout === 'pinned' && !pinProblem) {
    const plan = pinnedPlan();
    const before = { self: cpusOf(process.pid), redis: cpusOf(redisPid) };
    const undo = () => {
      pinProcess(process.pid, before.self);
      pinProcess(redisPid, before.redis);
    };
    try {
      pinProcess(process.pid, plan.worker);
      pinProcess(redisPid, plan.redis);
    } catch (error) {
      undo();
      throw error;
    }
    return {
      settings: { ...settings, exporterPlacement: { idlePriority: true, cpus: plan.redis } },
      describe:
        `layout: pinned. The worker (this process, and the exporter when in it) on CPU ${plan.worker}; ` +
        `redis-server, and the exporter's own process at idle priority, on CPU ${plan.redis}`,
      undo,
    };
  }
  if (pinProblem) {
    // Pinned asked for but impossible here: the OS places everything, the exporter's process still
    // gets only idle CPU where it can, so the figure stays that of a manager with CPU of its own.
    return {
      settings: { ...settings, exporterPlacement: { idlePriority: !idleProblem } },
      describe:
        `layout: pinned asked for, but ${pinProblem}: the OS places every process; the exporter's own ` +
        (idleProblem ? `process runs at normal priority (${idleProblem})` : 'process runs at idle priority'),
      undo: () => {},
    };
  }
  return {
    settings: { ...settings, exporterPlacement: { idlePriority: false } },
    describe:
      'layout: shared (one box). The OS places every process, all at default priority, as `npm start` ' +
      'or compose on one machine runs them',
    undo: () => {},
  };
}

/** The drain section in the layout asked for, undone afterwards whatever happens. */
async function benchDrain(
  options: BenchOptions,
  settings: DrainSettings,
  redisPid: number,
): Promise<string[]> {
  heading(
    `Drain throughput: ${options.jobs} no-op jobs per run, concurrency ${options.concurrency}, ` +
      `${options.rounds} interleaved rounds of ${options.variants.join(' / ')}`,
  );
  const summary: string[] = [];
  for (const layout of options.layouts) {
    const placement = placeDrain(layout, settings, redisPid);
    print();
    print(placement.describe);
    try {
      summary.push(...(await drainRounds(options, placement.settings, placement.describe, layout)));
    } finally {
      placement.undo();
    }
  }
  return summary;
}

async function drainRounds(
  options: BenchOptions,
  settings: DrainSettings,
  layout: string,
  layoutName: LayoutName,
): Promise<string[]> {
  const variants = options.variants;
  const warmupJobs = Math.min(options.jobs, 2000);
  for (const variant of variants) await drainOnce(settings, variant, 0, warmupJobs);
  print(`(warm-up: each variant drained ${warmupJobs} jobs once, not counted)`);
  const runs: DrainRun[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    for (const variant of roundOrder(variants, round - 1)) {
      const run = await drainOnce(settings, variant, round);
      runs.push(run);
      const catchUp =
        run.exporterCatchUpMs === undefined
          ? ''
          : `  exporter caught up ${formatMs(run.exporterCatchUpMs)} after the last completion`;
      const exporterCpu =
        run.exporterCpuUsPerJob === undefined
          ? ''
          : `, of which exporter ${run.exporterCpuUsPerJob.toFixed(1)} us`;
      print(
        `round ${round}  ${run.variant.padEnd(28)} ${formatRate(run.jobsPerSecond).padStart(7)} jobs/s` +
          `  (${run.jobs} jobs in ${run.windowMs} ms; cpu/job node ${run.nodeCpuUsPerJob.toFixed(1)} us,` +
          ` redis ${run.redisCpuUsPerJob.toFixed(1)} us${exporterCpu})${catchUp}`,
      );
    }
  }
  const rates = (variant: VariantName) =>
    runs.filter((r) => r.variant === variant).map((r) => r.jobsPerSecond);
  const medians = new Map(variants.map((v) => [v, median(rates(v))]));
  const cpu = (variant: VariantName, of: 'nodeCpuUsPerJob' | 'redisCpuUsPerJob') =>
    median(runs.filter((r) => r.variant === variant).map((r) => r[of])).toFixed(1);
  print();
  print(
    table(
      ['variant', 'median jobs/s', 'min', 'max', 'node cpu us/job', 'redis cpu us/job'],
      variants.map((v) => [
        v,
        formatRate(medians.get(v)!),
        formatRate(Math.min(...rates(v))),
        formatRate(Math.max(...rates(v))),
        cpu(v, 'nodeCpuUsPerJob'),
        cpu(v, 'redisCpuUsPerJob'),
      ]),
    ),
  );
  const summary: string[] = [layout];
  const ratioLine = (label: string, over: VariantName, under: VariantName, target?: number) => {
    const a = medians.get(over);
    const b = medians.get(under);
    if (a === undefined || b === undefined) return;
    const ratio = a / b;
    const pairs = pairedRatios(runs, over, under);
    const interval = pairs.length >= 4 ? medianInterval(pairs) : undefined;
    let goal = '';
    if (target !== undefined)
      goal = `  target >= ${target}: ${interval ? settledVerdict(ratio, interval, target) : verdict(ratio >= target)}`;
    summary.push(`${label.padEnd(48)} ${formatRatio(ratio)}${goal}`);
    if (interval)
      summary.push(
        `${'    same-round ratios'.padEnd(48)} median ${formatRatio(median(pairs))} (95% interval ` +
          `${formatRatio(interval.low)}-${formatRatio(interval.high)}), middle half ` +
          `${formatRatio(percentile(pairs, 25))}-${formatRatio(percentile(pairs, 75))} (${pairs.length} rounds)`,
      );
  };
  ratioLine('Jobbers / BullMQ (median jobs/s)', 'jobbers', 'bullmq', throughputTarget);
  ratioLine(
    'metrics on / off, exporter as deployed',
    'jobbers+exporter-process',
    'jobbers',
    throughputTarget,
  );
  ratioLine('metrics on / off, exporter in the worker', 'jobbers+exporter', 'jobbers', throughputTarget);
  // With CPU of its own (pinned) metrics should cost the drain nothing; on one shared box, at most 10%.
  ratioLine(
    `Jobbers, metrics on as deployed / BullMQ (${layoutName})`,
    'jobbers+exporter-process',
    'bullmq',
    layoutName === 'pinned' ? 1.0 : throughputTarget,
  );
  const cpuCost = (v: VariantName) =>
    median(runs.filter((r) => r.variant === v).map((r) => r.nodeCpuUsPerJob + r.redisCpuUsPerJob));
  const cpuLine = (label: string, over: VariantName, under: VariantName) => {
    if (!variants.includes(over) || !variants.includes(under)) return;
    summary.push(
      `${label.padEnd(48)} ${(cpuCost(over) / cpuCost(under)).toFixed(2)}x  (node+redis CPU per job, medians)`,
    );
  };
  cpuLine('CPU per job, Jobbers / BullMQ', 'jobbers', 'bullmq');
  cpuLine('CPU per job, metrics on / off, as deployed', 'jobbers+exporter-process', 'jobbers');
  cpuLine('CPU per job, metrics on / off, in the worker', 'jobbers+exporter', 'jobbers');
  const noisy = variants.filter((v) => Math.max(...rates(v)) > 1.3 * Math.min(...rates(v)));
  if (noisy.length > 0)
    summary.push(
      `NOISY: runs of ${noisy.join(', ')} differ by more than 30%; rerun on an idle machine or with more --rounds`,
    );
  // An exporter that fell behind during the drain (doing its work after the window measured)
  // would show here: each figure is how long after the last completion it had applied every event.
  for (const [variant, where] of [
    ['jobbers+exporter-process', 'as deployed'],
    ['jobbers+exporter', 'in the worker'],
  ] as const) {
    const catchUps = runs.flatMap((r) =>
      r.variant === variant && r.exporterCatchUpMs !== undefined ? [r.exporterCatchUpMs] : [],
    );
    if (catchUps.length > 0)
      summary.push(
        `${`exporter ${where}: caught up after the last job`.padEnd(48)} median ${formatMs(median(catchUps))}, max ${formatMs(Math.max(...catchUps))}`,
      );
  }
  print();
  for (const line of summary) print(line);
  return summary;
}

/**
 * The ratio within each round (its runs follow one another closely): the machine's slow drifts in speed
 * cancel, so it scatters less than a ratio of medians when the machine is noisy.
 */
function pairedRatios(runs: readonly DrainRun[], over: VariantName, under: VariantName): number[] {
  const ratios: number[] = [];
  const rounds = new Set(runs.map((r) => r.round));
  for (const round of rounds) {
    const a = runs.find((r) => r.round === round && r.variant === over);
    const b = runs.find((r) => r.round === round && r.variant === under);
    if (a && b) ratios.push(a.jobsPerSecond / b.jobsPerSecond);
  }
  return ratios;
}

async function benchRest(options: BenchOptions, redisUrl: string, admin: Redis): Promise<string[]> {
  heading(
    `REST submit throughput: a jobbers-manager process (production defaults) against a minimal ` +
      `Fastify + BullMQ process (bench/minimal-route.ts); autocannon ${options.restConnections} ` +
      `connections, ${options.restSeconds} s per run, batches of ${options.batchSize}, ` +
      `${options.restRounds} interleaved rounds`,
  );
  const runs = await runRestBench(
    {
      redisUrl,
      admin,
      seconds: options.restSeconds,
      connections: options.restConnections,
      batchSize: options.batchSize,
      rounds: options.restRounds,
    },
    (r) =>
      print(
        `round ${r.round}  ${r.variant.padEnd(16)} ${formatRate(r.requestsPerSecond).padStart(7)} req/s ` +
          `${formatRate(r.tasksPerSecond).padStart(8)} tasks/s  p50 ${formatMs(r.p50Ms)} p99 ${formatMs(r.p99Ms)}` +
          `  server cpu ${r.serverCpuUsPerRequest.toFixed(0)} us/req  non-2xx ${r.non2xx} errors ${r.errors}`,
      ),
  );
  const of = (variant: RestVariant) => runs.filter((r) => r.variant === variant);
  print();
  print(
    table(
      ['variant', 'median req/s', 'min', 'max', 'tasks/s', 'p99', 'server cpu us/req', 'non-2xx'],
      restVariants.map((v) => [
        v,
        formatRate(median(of(v).map((r) => r.requestsPerSecond))),
        formatRate(Math.min(...of(v).map((r) => r.requestsPerSecond))),
        formatRate(Math.max(...of(v).map((r) => r.requestsPerSecond))),
        formatRate(median(of(v).map((r) => r.tasksPerSecond))),
        formatMs(median(of(v).map((r) => r.p99Ms))),
        median(of(v).map((r) => r.serverCpuUsPerRequest)).toFixed(0),
        of(v).reduce((sum, r) => sum + r.non2xx + r.errors, 0),
      ]),
    ),
  );
  for (const r of runs) {
    const accepted = r.ok * r.tasksPerRequest;
    const inFlight = options.restConnections * r.tasksPerRequest;
    if (r.enqueued < accepted || r.enqueued > accepted + inFlight)
      print(
        `WARNING: ${r.variant} round ${r.round}: ${accepted} tasks acknowledged but ${r.enqueued} enqueued`,
      );
  }
  const summary: string[] = [];
  const ratio = (label: string, over: RestVariant, under: RestVariant, target: number) => {
    const pairs = runs
      .filter((r) => r.variant === over)
      .flatMap((r) => {
        const base = runs.find((b) => b.variant === under && b.round === r.round);
        return base && base.requestsPerSecond > 0 ? [r.requestsPerSecond / base.requestsPerSecond] : [];
      });
    const value =
      median(of(over).map((r) => r.requestsPerSecond)) / median(of(under).map((r) => r.requestsPerSecond));
    const interval = pairs.length >= 4 ? medianInterval(pairs) : undefined;
    const spread = interval
      ? `same-round median ${formatRatio(median(pairs))} (95% interval ${formatRatio(interval.low)}-${formatRatio(interval.high)})`
      : `same-round ${pairs.map(formatRatio).join(', ')}`;
    const goal = interval ? settledVerdict(value, interval, target) : verdict(value >= target);
    const cpu =
      median(of(under).map((r) => r.serverCpuUsPerRequest)) /
      median(of(over).map((r) => r.serverCpuUsPerRequest));
    summary.push(
      `${label.padEnd(48)} ${formatRatio(value)}  ${spread}; target >= ${target}: ${goal}; ` +
        `server CPU per request ${cpu > 0 ? (1 / cpu).toFixed(2) : '-'}x the baseline's`,
    );
  };
  ratio('REST single submit / minimal queue.add route', 'jobbers single', 'baseline single', 0.7);
  ratio(`REST batch of ${options.batchSize} / minimal addBulk route`, 'jobbers batch', 'baseline batch', 0.8);
  print();
  for (const line of summary) print(line);
  return summary;
}

async function benchCost(options: BenchOptions, settings: DrainSettings): Promise<string[]> {
  heading(
    `Exporter cost: ${options.jobs} no-op jobs submitted and drained once (recorded), then applied by a ` +
      `fresh exporter ${options.costRepeats} times per reader with nothing else running; readers: ` +
      `auto (the production reader: its own socket and decoder) and ioredis (plain XRANGE), alternating`,
  );
  const result = await runExporterCostBench({ ...settings, repeats: options.costRepeats }, (r) =>
    print(
      `replay ${r.round}  ${r.reader.padEnd(7)}  submissions node ${r.submit.nodeUs.toFixed(2)} us, redis ` +
        `${r.submit.redisUs.toFixed(2)} us, caught up in ${formatMs(r.submitCatchUpMs)};  drain node ` +
        `${r.drain.nodeUs.toFixed(2)} us, redis ${r.drain.redisUs.toFixed(2)} us, caught up in ` +
        `${formatMs(r.drainCatchUpMs)}  (per job)`,
    ),
  );
  const of = (reader: string) => result.replays.filter((r) => r.reader === reader);
  const rows: string[][] = [];
  for (const reader of costReaders) {
    for (const [name, pick, lag] of [
      ['submissions (added, waiting)', (r: CostReplay) => r.submit, (r: CostReplay) => r.submitCatchUpMs],
      ['drain (active, completed)', (r: CostReplay) => r.drain, (r: CostReplay) => r.drainCatchUpMs],
    ] as const) {
      const costs = of(reader).map(pick);
      rows.push([
        reader,
        name,
        median(costs.map((c) => c.nodeUs)).toFixed(2),
        median(costs.map((c) => c.redisUs)).toFixed(2),
        median(costs.map((c) => c.nodeUs + c.redisUs)).toFixed(2),
        formatMs(median(of(reader).map(lag))),
      ]);
    }
  }
  print();
  print(
    table(
      ['reader', 'phase (2 stream entries per job)', 'node us/job', 'redis us/job', 'total', 'caught up in'],
      rows,
    ),
  );
  const total = (reader: string) =>
    median(of(reader).map((r) => r.submit.nodeUs + r.submit.redisUs + r.drain.nodeUs + r.drain.redisUs));
  const node = (reader: string) => median(of(reader).map((r) => r.submit.nodeUs + r.drain.nodeUs));
  const lag = (reader: string) => median(of(reader).map((r) => r.submitCatchUpMs + r.drainCatchUpMs));
  return [
    ...rows
      .filter((r) => r[0] === 'auto')
      .map(
        (r) =>
          `exporter cost, ${r[1]}: node ${r[2]} us + redis ${r[3]} us per job (medians of ${options.costRepeats})`,
      ),
    `exporter cost, the direct reader against ioredis: node ${(node('auto') / node('ioredis')).toFixed(2)}x, ` +
      `node + redis ${(total('auto') / total('ioredis')).toFixed(2)}x, catch-up time ` +
      `${(lag('auto') / lag('ioredis')).toFixed(2)}x (${formatMs(lag('auto'))} vs ${formatMs(lag('ioredis'))})`,
  ];
}

async function benchLag(options: BenchOptions, redisUrl: string, admin: Redis): Promise<string[]> {
  heading(
    `Exporter lag: ${options.lagRate} echo jobs/s for ${options.lagSeconds} s, one jobbers-worker process ` +
      `(concurrency ${options.concurrency}), exporter in this process, sampled every ${options.lagSampleMs} ms`,
  );
  const result = await runExporterLagBench({
    redisUrl,
    admin,
    seconds: options.lagSeconds,
    rate: options.lagRate,
    sampleMs: options.lagSampleMs,
    concurrency: options.concurrency,
  });
  const { pendingAgeMs: age } = result;
  const lines = [
    `load        ${formatRate(result.jobsPerSecond)} jobs/s, ${formatRate(result.eventsPerSecond)} stream events/s for ${result.seconds.toFixed(1)} s (${result.jobsSubmitted} jobs)`,
    `lag         p50 ${formatMs(age.p50)}, p99 ${formatMs(age.p99)}, max ${formatMs(age.max)}  (${result.samples} samples, as jobbers_exporter_lag_seconds; target p99 < ${lagP99TargetMs} ms: ${verdict(age.p99 < lagP99TargetMs)})`,
    `recounts    ${result.recounts} during the load; caught up ${formatMs(result.catchUpAfterLoadMs)} after the last completion`,
    `available   ${JSON.stringify(result.availableAfter)} once drained (expected all 0)`,
  ];
  for (const line of lines) print(line);
  return lines;
}

function describeRecount(variant: string, r: RecountBenchResult): string {
  const exact =
    r.exactAfterSeconds === undefined
      ? `NOT exact (gave up; gauge read ${JSON.stringify(r.lastGauge)})`
      : `exact after ${r.exactAfterSeconds.toFixed(2)} s`;
  const load = r.added === undefined ? '' : `, ${r.drained} drained and ${r.added} added meanwhile`;
  const cpu = r.cpuSeconds
    ? `; CPU until exact: redis-server ${r.cpuSeconds.redis.toFixed(2)} s, manager ${r.cpuSeconds.manager.toFixed(2)} s`
    : '';
  const own = r.recountSeconds === undefined ? '' : ` (the recount itself ${r.recountSeconds.toFixed(2)} s)`;
  return `recount, ${variant}: ${exact}${own}${cpu}; truth ${JSON.stringify(r.truth)}; recounts started ${r.recountsStarted}, restarted ${r.recountRestarts}; manager peak RSS ${Math.round(r.peakRssMb)} MB${load}`;
}

async function benchRecount(options: BenchOptions, redisUrl: string, admin: Redis): Promise<string[]> {
  heading(
    `Cold recount: ${options.recountJobs} waiting tasks of 3 types, then one jobbers-manager process ` +
      `(target: exact in < 5 s, peak RSS < 300 MB; gives up after ${options.recountTimeoutSeconds} s)`,
  );
  const lines: string[] = [];
  for (const underLoad of [false, true]) {
    const result = await runRecountBench({
      redisUrl,
      admin,
      jobs: options.recountJobs,
      timeoutSeconds: options.recountTimeoutSeconds,
      underLoad,
    });
    const line = describeRecount(underLoad ? 'worker draining, producer adding' : 'quiet', result);
    print(line);
    lines.push(line);
  }
  return lines;
}

async function benchLatency(options: BenchOptions, redisUrl: string, admin: Redis): Promise<string[]> {
  heading(
    `Submission latency: ${options.latencyRate} single tasks/s for ${options.latencySeconds} s per run, ` +
      `${options.latencyRounds} interleaved rounds; one jobbers-manager process (exporter on), one with ` +
      `JOBBERS_EXPORTER=off, one jobbers-worker process (concurrency ${options.concurrency}); bare BullMQ ` +
      `worker and queue.add in this process`,
  );
  const ms = (value: number | undefined) => (value === undefined ? '-' : value.toFixed(1));
  const runs = await runLatencyBench(
    {
      redisUrl,
      admin,
      rate: options.latencyRate,
      seconds: options.latencySeconds,
      rounds: options.latencyRounds,
      concurrency: options.concurrency,
    },
    (run: LatencyRun) =>
      print(
        `round ${run.round}  ${run.variant.padEnd(34)} ${formatRate(run.achievedRate).padStart(6)}/s  ` +
          `in queue p50 ${ms(run.timeInQueueMs.p50)} p99 ${ms(run.timeInQueueMs.p99)} max ` +
          `${ms(run.timeInQueueMs.max)}  response p50 ${ms(run.responseMs?.p50)} p99 ${ms(run.responseMs?.p99)}` +
          `  manager loop delay p99 ${ms(run.managerLoopDelayP99Ms)} ms, cpu ${Math.round(run.managerCpuUsPerSubmission ?? 0)} us/task` +
          `, gc ${run.managerGc?.count ?? '-'} (${ms(run.managerGc?.totalMs)} ms, ${run.managerGc?.over10Ms ?? '-'} over 10 ms)` +
          `  redis >= 1 ms: ${run.redisSlow.count}${run.redisSlow.slowest ? `, slowest ${run.redisSlow.slowest.name} ${ms(run.redisSlow.slowest.ms)} ms` : ''}` +
          `${run.errors ? `  ERRORS ${run.errors}` : ''}`,
      ),
  );
  const of = (variant: string, pick: (r: LatencyRun) => number | undefined) =>
    runs.flatMap((r) => {
      const value = r.variant === variant ? pick(r) : undefined;
      return value === undefined || Number.isNaN(value) ? [] : [value];
    });
  const cell = (values: number[]) =>
    values.length === 0
      ? '-'
      : `${median(values).toFixed(1)} (${Math.min(...values).toFixed(1)}-${Math.max(...values).toFixed(1)})`;
  const rows = latencyVariants.map((v) => [
    v,
    cell(of(v, (r) => r.timeInQueueMs.p50)),
    cell(of(v, (r) => r.timeInQueueMs.p99)),
    cell(of(v, (r) => r.responseMs?.p50)),
    cell(of(v, (r) => r.responseMs?.p99)),
    cell(of(v, (r) => r.managerLoopDelayP99Ms)),
    cell(of(v, (r) => r.managerCpuUsPerSubmission)),
  ]);
  print();
  print(
    "ms; median of the rounds (min-max); loop delay is that of the manager submitted to (the exporter's for queue.add)",
  );
  print(
    table(
      [
        'path',
        'in queue p50',
        'in queue p99',
        'response p50',
        'response p99',
        'manager loop delay p99',
        'manager cpu us/task',
      ],
      rows,
    ),
  );
  return rows.map(
    (r) =>
      `latency, ${r[0]}: in queue p50 ${r[1]}, p99 ${r[2]}; response p50 ${r[3]}, p99 ${r[4]}; loop delay p99 ${r[5]} ms; manager cpu ${r[6]} us/task`,
  );
}

async function benchWorkflow(options: BenchOptions, redisUrl: string): Promise<string[]> {
  heading(
    `Workflow overhead: ${options.workflowNodes} example.square fanned out and merged by example.sum, as one ` +
      `workflow vs submitted flat (the sum after every square completed), ${options.rounds} rounds`,
  );
  const runs = await runWorkflowBench({
    redisUrl,
    nodes: options.workflowNodes,
    rounds: options.rounds,
    concurrency: options.concurrency,
    print,
  });
  const ratios: number[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    const of = (variant: WorkflowRun['variant']) =>
      runs.find((r) => r.round === round && r.variant === variant);
    const asWorkflow = of('workflow');
    const asFlat = of('flat');
    if (asWorkflow && asFlat) ratios.push(asWorkflow.seconds / asFlat.seconds);
  }
  const seconds = (variant: WorkflowRun['variant']) =>
    median(runs.filter((r) => r.variant === variant).map((r) => r.seconds));
  const line =
    `workflow: ${options.workflowNodes}-node fan-out/fan-in ${seconds('workflow').toFixed(2)} s vs flat ` +
    `${seconds('flat').toFixed(2)} s; time ratio workflow/flat median ${formatRatio(median(ratios))} ` +
    `(rounds: ${ratios.map(formatRatio).join(', ')}; below 1 is faster than submitting flat)`;
  print();
  print(line);
  return [line];
}

const consoleRatioTarget = 0.95;

async function benchConsole(options: BenchOptions, redisUrl: string): Promise<string[]> {
  heading(
    `Console open vs closed: jobbers-manager + jobbers-worker (concurrency ${options.concurrency}) processes, ` +
      `${options.jobs} example.echo tasks per drain, ${options.rounds} rounds; open = the tasks page in chromium ` +
      'plus one more /v1/events subscriber',
  );
  const runs = await runConsoleBench({
    redisUrl,
    jobs: options.jobs,
    rounds: options.rounds,
    concurrency: options.concurrency,
    print,
  });
  if (typeof runs === 'string') {
    print(`SKIPPED: ${runs}`);
    return [`console: skipped (${runs})`];
  }
  const ratios: number[] = [];
  // The manager's CPU the open console costs, per transition per stream that follows them all: the
  // figure noise moves least (CPU time, not wall time).
  const perTransitionUs: number[] = [];
  const cpu = {
    closed: [] as number[],
    open: [] as number[],
    redisClosed: [] as number[],
    redisOpen: [] as number[],
  };
  for (let round = 1; round <= options.rounds; round++) {
    const of = (variant: ConsoleRun['variant']) =>
      runs.find((r) => r.round === round && r.variant === variant);
    const open = of('open');
    const closed = of('closed');
    if (!open || !closed) continue;
    ratios.push(open.jobsPerSecond / closed.jobsPerSecond);
    cpu.closed.push(closed.cpuMs.manager);
    cpu.open.push(open.cpuMs.manager);
    cpu.redisClosed.push(closed.cpuMs.redis);
    cpu.redisOpen.push(open.cpuMs.redis);
    // Without curl's full stream its count is not there: each task makes two transitions in a drain.
    const transitions = open.eventsRead > 0 ? open.eventsRead : 2 * open.jobs;
    if (open.fullStreams > 0)
      perTransitionUs.push(
        ((open.cpuMs.manager - closed.cpuMs.manager) * 1000) / (transitions * open.fullStreams),
      );
  }
  const rates = (variant: ConsoleRun['variant']) =>
    runs.filter((r) => r.variant === variant).map((r) => r.jobsPerSecond);
  const ratio = median(ratios);
  const line =
    `console: drain with the console open ${formatRate(median(rates('open')))} jobs/s vs closed ` +
    `${formatRate(median(rates('closed')))} jobs/s; paired ratio median ${formatRatio(ratio)} ` +
    `(rounds: ${ratios.map(formatRatio).join(', ')}; target >= ${consoleRatioTarget}) ${verdict(ratio >= consoleRatioTarget)}` +
    dropNote(runs.filter((r) => r.variant === 'open'));
  const cpuLine =
    `console: manager CPU per drain closed ${Math.round(median(cpu.closed))} ms -> open ${Math.round(median(cpu.open))} ms ` +
    `(medians; redis-server ${Math.round(median(cpu.redisClosed))} -> ${Math.round(median(cpu.redisOpen))} ms); ` +
    `manager CPU per transition per full stream ${median(perTransitionUs).toFixed(1)} us ` +
    `(rounds: ${perTransitionUs.map((us) => us.toFixed(1)).join(', ')}); load avg ${describeLoad()}`;
  print();
  print(line);
  print(cpuLine);
  return [line, cpuLine];
}

async function benchCluster(options: BenchOptions): Promise<string[]> {
  heading(
    `Redis Cluster: ${options.clusterJobs} no-op tasks over 6 queues drained on 1 master vs 3 masters, ${options.clusterRounds} interleaved rounds`,
  );
  const { runs, lines } = await runClusterBench({
    jobs: options.clusterJobs,
    rounds: options.clusterRounds,
    concurrency: options.concurrency,
  });
  for (const line of lines) print(line);
  return [1, 3].map((masters) => {
    const rates = runs.filter((r) => r.masters === masters).map((r) => r.jobsPerSecond);
    return `cluster, ${masters} master(s): ${formatRate(median(rates))} jobs/s median of ${rates.map((r) => formatRate(r)).join(', ')}`;
  });
}

async function main() {
  const options = parseBenchOptions(process.argv.slice(2));
  if (options === 'help') {
    print(usage);
    return;
  }
  const startedAt = Date.now();
  const redis = await startRedisServer();
  const admin = new Redis(redis.url, { maxRetriesPerRequest: null });
  const summary: string[] = [];
  try {
    heading('Environment');
    for (const line of await describeEnvironment(admin)) print(line);
    if (machineIsBusy())
      print('WARNING: the machine is busy with other work; absolute figures will be low and noisy');
    const drainSettings: DrainSettings = {
      redisUrl: redis.url,
      admin,
      jobs: options.jobs,
      concurrency: options.concurrency,
    };
    if (options.sections.includes('drain'))
      summary.push(...(await benchDrain(options, drainSettings, redis.process.pid!)));
    if (options.sections.includes('cost')) summary.push(...(await benchCost(options, drainSettings)));
    if (options.sections.includes('rest')) summary.push(...(await benchRest(options, redis.url, admin)));
    if (options.sections.includes('lag')) summary.push(...(await benchLag(options, redis.url, admin)));
    if (options.sections.includes('recount'))
      summary.push(...(await benchRecount(options, redis.url, admin)));
    if (options.sections.includes('latency'))
      summary.push(...(await benchLatency(options, redis.url, admin)));
    if (options.sections.includes('console')) summary.push(...(await benchConsole(options, redis.url)));
    if (options.sections.includes('cluster')) summary.push(...(await benchCluster(options)));
    if (options.sections.includes('workflow')) summary.push(...(await benchWorkflow(options, redis.url)));
  } finally {
    admin.disconnect();
    await redis.stop();
  }
  heading(
    `Summary (${Math.round((Date.now() - startedAt) / 1000)} s; load avg at the end ${describeLoad()})`,
  );
  for (const line of summary) print(line);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);

/** Says in how many open runs the manager dropped the extra subscriber: their figures flatter the page. */
function dropNote(open: ConsoleRun[]): string {
  const dropped = open.filter((r) => r.subscriberDropped).length;
  return dropped === 0
    ? ''
    : `; in ${dropped} of ${open.length} open runs the manager dropped curl as a slow consumer (more than 1 MiB unsent) before the drain's last transition, so those runs served less than the whole stream`;
}
