// The shipped Prometheus config, alert rules and Grafana dashboard against a real Prometheus scraping a
// real manager and worker: every panel query returns data and every alert rule evaluates cleanly.
// Redis refuses writes for a moment so the Health row has a failed metrics flush to show.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { parse, stringify } from 'yaml';
import { metricValue, parseExposition } from '../support/metrics.js';
import { bins, runProcess } from '../support/processes.js';
import { type PrometheusServer, type PromSample, startPrometheus } from '../support/prometheus.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import {
  type ManagerProcess,
  startManagerProcess,
  startWorkerProcess,
  taskFinished,
  type WorkerProcess,
} from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const deployDir = fileURLToPath(new URL('../../deploy/', import.meta.url));
const shippedConfig = parse(readFileSync(`${deployDir}prometheus/prometheus.yml`, 'utf8'));
const alertsFile = `${deployDir}prometheus/alerts.yml`;
const alertRules: { alert: string; expr: string }[] = parse(readFileSync(alertsFile, 'utf8')).groups.flatMap(
  (g: { rules: { alert: string; expr: string }[] }) => g.rules,
);

interface PanelTarget {
  panel: string;
  expr: string;
}
interface Panel {
  type: string;
  title: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: Panel[];
}
const dashboard = JSON.parse(readFileSync(`${deployDir}grafana/dashboards/jobbers.json`, 'utf8'));
const panels: Panel[] = (dashboard.panels as Panel[])
  .flatMap((p) => [p, ...(p.panels ?? [])])
  .filter((p) => p.type !== 'row');

/** What Grafana would send: variables set to "All" (.*) and the intervals to a window the whole test fits in. */
function asPrometheusQuery(expr: string): string {
  return expr
    .replace(/\$\{?__rate_interval\}?|\$\{?__interval\}?/g, '1m')
    .replace(/\$\{?(queue|task)\}?/g, '.*');
}
const panelTargets: PanelTarget[] = panels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: asPrometheusQuery(t.expr ?? '') })),
);
const cleanerPanelPattern = /jobbers_cleaner_/;

let redis: RedisServer;
let manager: ManagerProcess;
let worker: WorkerProcess;
let prometheus: PrometheusServer;
let prefix: string;
let cleanerImplemented = true;

/** The shipped config with each job's DNS discovery replaced by the local process, scraped every second. */
function localConfig(targets: Record<string, number>): string {
  const config = structuredClone(shippedConfig);
  config.global = { ...config.global, scrape_interval: '1s', evaluation_interval: '1s' };
  config.rule_files = (config.rule_files as string[]).map((file) =>
    file.startsWith('/') ? file : `${deployDir}prometheus/${file}`,
  );
  const jobs = (config.scrape_configs as { job_name: string; [key: string]: unknown }[]).map(
    (job) => job.job_name,
  );
  assert.deepEqual(jobs.sort(), Object.keys(targets).sort(), 'the shipped scrape jobs');
  for (const job of config.scrape_configs) {
    assert.ok(job.dns_sd_configs, `${job.job_name}: the shipped config discovers replicas by DNS`);
    delete job.dns_sd_configs;
    job.static_configs = [{ targets: [`127.0.0.1:${targets[job.job_name]}`] }];
    job.scrape_interval = '1s';
  }
  return stringify(config);
}

async function managerSamples() {
  const text = await (await fetch(`${manager.baseUrl}/metrics`)).text();
  return parseExposition(text);
}

async function workerFlushFailures(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
  return metricValue(parseExposition(text), 'jobbers_metrics_flush_failures_total');
}

function total(samples: ReturnType<typeof parseExposition>, name: string): number {
  return samples.filter((s) => s.name === name).reduce((sum, s) => sum + s.value, 0);
}

async function scalar(expr: string): Promise<number> {
  const { result } = await prometheus.query(expr);
  return result.length === 0 ? Number.NaN : Number((result[0] as PromSample).value[1]);
}

/** One round of work that moves every panel: completions, retries, an incident, a timeout. */
async function runWave(label: string): Promise<string[]> {
  const reply = await manager.request('POST', '/v1/tasks/batch', {
    tasks: [
      ...[1, 2, 3, 4, 5].map((n) => ({ task: 'example.echo', params: { wave: label, n } })),
      { task: 'example.sleep', params: { ms: 20 } },
      { task: 'example.sleep', params: { ms: 40 } },
      { task: 'example.flaky', params: { failTimes: 2 } },
      { task: 'example.flaky', params: { failTimes: 5 }, retries: 0 },
      { task: 'example.sleep', params: { ms: 5000 }, timeout: 150, retries: 0 },
    ],
  });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  const ids = (reply.body.tasks as { id: string }[]).map((t) => t.id);
  await Promise.all(ids.map((id) => taskFinished(manager, id)));
  return ids;
}

/** Waits until the manager's counters include the wave and Prometheus has scraped those values. */
async function waitUntilScraped(processedTasks: number) {
  const shown = await waitFor(
    async () => {
      const samples = await managerSamples();
      const processed = total(samples, 'jobbers_tasks_processed_total');
      return processed >= processedTasks
        ? {
            processed,
            queued: total(samples, 'jobbers_time_in_queue_seconds_count'),
            executed: total(samples, 'jobbers_execution_time_seconds_count'),
          }
        : undefined;
    },
    { timeoutMs: 10_000, what: `${processedTasks} processed tasks in the manager's /metrics` },
  );
  await waitFor(
    async () =>
      (await scalar('sum(max by (queue, task, status) (jobbers_tasks_processed_total))')) >=
        shown.processed &&
      (await scalar('sum(max by (queue, task, role) (jobbers_time_in_queue_seconds_count))')) >=
        shown.queued &&
      (await scalar('sum(max by (queue, task, status) (jobbers_execution_time_seconds_count))')) >=
        shown.executed,
    { timeoutMs: 10_000, what: 'prometheus to scrape the wave' },
  );
}

/**
 * Redis refuses writes (OOM under noeviction) while the worker drains a batch, until the worker has
 * failed a metrics flush, then accepts them again and the batch finishes. A flush fails only while
 * the worker holds counts, so a refusal that begins just after a flush emptied its buffer is undone
 * and tried again with the next batch.
 */
async function failAWorkerMetricsFlush(): Promise<void> {
  const admin = new Redis(redis.url);
  try {
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    for (let attempt = 1; ; attempt++) {
      const reply = await manager.request('POST', '/v1/tasks/batch', {
        tasks: Array.from({ length: 40 }, () => ({ task: 'example.sleep', params: { ms: 20 } })),
      });
      assert.equal(reply.status, 201, JSON.stringify(reply.body));
      const ids = (reply.body.tasks as { id: string }[]).map((t) => t.id);
      await taskFinished(manager, ids[8]!);
      const failuresBefore = await workerFlushFailures();
      await admin.config('SET', 'maxmemory', '1');
      const failed = await waitFor(async () => (await workerFlushFailures()) > failuresBefore, {
        timeoutMs: 3000,
        what: 'a metrics flush of the worker to be refused',
      }).then(
        () => true,
        (error) => {
          if (attempt === 3) throw error;
          return false;
        },
      );
      await admin.config('SET', 'maxmemory', '0');
      await Promise.all(ids.map((id) => taskFinished(manager, id)));
      if (failed) break;
    }
  } finally {
    await admin.config('SET', 'maxmemory', '0');
    admin.disconnect();
  }
  await waitFor(
    async () =>
      (await scalar('sum(jobbers_metrics_flush_failures_total{job="jobbers-worker"})')) > 0 &&
      (await scalar('sum(max by (queue, task) (jobbers_jobs_available))')) === 0,
    { timeoutMs: 10_000, what: 'prometheus to scrape the failed flush and the drained queue' },
  );
}

before(async () => {
  redis = await startRedisServer();
  prefix = uniquePrefix('prom');
  const env = { REDIS_URL: redis.url, JOBBERS_PREFIX: prefix };
  [manager, worker] = await Promise.all([
    startManagerProcess(env),
    startWorkerProcess({ ...env, WORKER_CONCURRENT_TASKS: '4' }),
  ]);
  prometheus = await startPrometheus(
    localConfig({ 'jobbers-manager': manager.port, 'jobbers-worker': worker.metricsPort }),
  );
  await waitFor(
    async () => {
      const { activeTargets } = await prometheus.api('targets');
      return activeTargets.length === 2 && activeTargets.every((t: { health: string }) => t.health === 'up');
    },
    { timeoutMs: 15_000, what: 'both scrape targets to be up' },
  );
  // A baseline before any work, so rate() and increase() see the counters move.
  await waitFor(async () => (await scalar('min(count_over_time(up[1m]))')) >= 2, {
    timeoutMs: 10_000,
    what: 'two scrapes of each target',
  });

  await runWave('first');
  await waitUntilScraped(10);
  await runWave('second');
  await waitUntilScraped(20);

  const cleaned = await waitFor(
    async () => {
      const run = await runProcess(bins.cleaner, ['--state', 'completed', '--older-than', '1s', '--json'], {
        ...env,
        JOBBERS_TASKS: '@jobbers/examples',
      });
      if (/not implemented/.test(run.output)) return { implemented: false, output: run.output };
      assert.equal(run.code, 0, `jobbers-cleaner failed: ${run.output}`);
      const removed = total(await managerSamples(), 'jobbers_cleaner_removed_total');
      return removed > 0 ? { implemented: true, output: run.output } : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 250, what: 'jobbers-cleaner to remove completed tasks' },
  );
  cleanerImplemented = cleaned.implemented;
  if (cleanerImplemented) {
    await waitFor(
      async () =>
        (await prometheus.query('jobbers_cleaner_last_success_timestamp_seconds')).result.length > 0 &&
        (await prometheus.query('jobbers_cleaner_removed_total')).result.length > 0,
      { timeoutMs: 10_000, what: 'prometheus to scrape the cleaner metrics' },
    );
  }
  await failAWorkerMetricsFlush();
});

after(async () => {
  await prometheus?.stop();
  await Promise.all([manager?.stop(), worker?.stop()]);
  await redis?.stop();
});

function hasNumber(result: PromSample[]): boolean {
  return result.some((s) => Number.isFinite(Number(s.value[1])));
}

test('every panel query of the shipped dashboard succeeds and returns data', async (t) => {
  if (!cleanerImplemented)
    t.diagnostic('jobbers-cleaner is not implemented: the cleaner panels are allowed to be empty');
  const mayBeEmpty = (target: PanelTarget) => !cleanerImplemented && cleanerPanelPattern.test(target.expr);
  let empty: string[] = [];
  // Panels over several series (increase over a fresh counter, quantiles) fill in within a scrape or two.
  await waitFor(
    async () => {
      empty = [];
      for (const target of panelTargets) {
        const { result } = await prometheus.query(target.expr);
        if (!hasNumber(result) && !mayBeEmpty(target)) empty.push(`${target.panel}: ${target.expr}`);
      }
      return empty.length === 0;
    },
    { timeoutMs: 10_000, intervalMs: 500, what: 'every panel to have data' },
  ).catch(() => {
    assert.fail(`panels without data:\n${empty.join('\n')}`);
  });
  assert.ok(panelTargets.length >= 30, `only ${panelTargets.length} panel queries`);
  for (const target of panelTargets) {
    const data = await prometheus.query(target.expr);
    assert.equal(data.resultType, 'vector', `${target.panel}: ${target.expr}`);
    if (!mayBeEmpty(target)) assert.ok(data.result.length > 0, `${target.panel}: no data for ${target.expr}`);
  }
});

test('the headline panels show the workload: completions, retries, timeouts, incidents, time in queue', async () => {
  const byTask = async (expr: string) =>
    Object.fromEntries(
      (await prometheus.query(expr)).result.map((s) => [s.metric.task, Number(s.value[1])]),
    ) as Record<string, number>;
  assert.ok((await scalar(panelExpr('Completed / s'))) > 0, 'completed per second');
  const incidents = await byTask('max by (queue, task) (jobbers_incidents)');
  assert.deepEqual(
    { flaky: incidents['example.flaky'], sleep: incidents['example.sleep'] },
    { flaky: 2, sleep: 2 },
  );
  assert.equal(await scalar(panelExpr('Open incidents')), 4);
  assert.ok((await byTask(panelExpr('Retries')))['example.flaky']! > 0, 'flaky retry rate');
  assert.ok((await byTask(panelExpr('Timeouts')))['example.sleep']! > 0, 'sleep timeout rate');
  const p95 = await byTask(panelExpr('Time in queue p50 / p95 / p99', 1));
  assert.ok(Number.isFinite(p95['example.echo']), `echo time-in-queue p95: ${p95['example.echo']}`);
  assert.equal(await scalar(panelExpr('Workers up')), 1);
  assert.equal(await scalar(panelExpr('Managers up')), 1);
  assert.equal(await scalar(panelExpr('Available jobs')), 0);
});

test('the Health row shows the refused flush, managers reading the cluster metrics, nothing dropped', async () => {
  const byJob = async (expr: string) => {
    const values: Record<string, number> = {};
    for (const s of (await prometheus.query(expr)).result)
      values[s.metric.job!] = (values[s.metric.job!] ?? 0) + Number(s.value[1]);
    return values;
  };
  const flushFailures = await byJob(panelExpr('Metrics flush failures'));
  assert.ok(
    flushFailures['jobbers-worker']! > 0,
    `worker flush failures/s: ${flushFailures['jobbers-worker']}`,
  );
  assert.equal(flushFailures['jobbers-manager'], 0);
  assert.deepEqual(await byJob(panelExpr('Dropped increments (1h)')), {
    'jobbers-manager': 0,
    'jobbers-worker': 0,
  });
  assert.equal(await scalar(panelExpr('Cluster metrics up per manager')), 1);
  const processErrors = await byJob(panelExpr('Process errors by operation'));
  assert.deepEqual(Object.keys(processErrors).sort(), ['jobbers-manager', 'jobbers-worker']);
});

async function alertState(name: string): Promise<string | undefined> {
  const { groups } = await prometheus.api('rules', { type: 'alert' });
  const rules = groups.flatMap((g: { rules: { name: string; state: string }[] }) => g.rules);
  return rules.find((r: { name: string }) => r.name === name)?.state;
}

function panelExpr(title: string, index = 0): string {
  const matching = panelTargets.filter((t) => t.panel === title);
  assert.ok(matching[index], `panel "${title}" target ${index}`);
  return matching[index]!.expr;
}

test('every alert rule of alerts.yml is loaded and evaluates without error', async () => {
  const evaluated = await waitFor(
    async () => {
      const { groups } = await prometheus.api('rules', { type: 'alert' });
      const rules = groups.flatMap((g: { rules: unknown[] }) => g.rules) as {
        name: string;
        health: string;
        lastError?: string;
        lastEvaluation: string;
        state: string;
      }[];
      const fresh = rules.every((r) => Date.parse(r.lastEvaluation) > Date.parse('2000-01-01'));
      return fresh && rules.length === alertRules.length ? rules : undefined;
    },
    { timeoutMs: 10_000, what: 'every alert rule to be evaluated' },
  );
  assert.deepEqual(evaluated.map((r) => r.name).sort(), alertRules.map((r) => r.alert).sort());
  for (const rule of evaluated) assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);
  for (const rule of alertRules) await prometheus.query(rule.expr);
  const state = Object.fromEntries(evaluated.map((r) => [r.name, r.state]));
  assert.ok(
    ['pending', 'firing'].includes(state.JobbersIncidentsOpen!),
    `incidents: ${state.JobbersIncidentsOpen}`,
  );
  assert.equal(state.JobbersNoWorkerUp, 'inactive');
  assert.equal(state.JobbersNoManagerUp, 'inactive');
  assert.equal(state.JobbersClusterMetricsDown, 'inactive');
  // The refused flush shows within a rule evaluation; the alert then waits out its 5 minutes.
  await waitFor(async () => (await alertState('JobbersMetricsFlushFailing')) === 'pending', {
    timeoutMs: 10_000,
    what: 'JobbersMetricsFlushFailing to be pending',
  });
  assert.equal(state.JobbersMetricsIncrementsDropped, 'inactive');
});
