// The shipped PromQL (Grafana dashboard, alert rules, KEDA trigger) uses only contract metrics and
// never sums a cluster-wide series across manager instances.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** Cluster-wide metrics: read from Redis, the same on every manager (DESIGN.md metrics contract). */
const clusterMetrics = [
  'jobbers_jobs_available',
  'jobbers_jobs_available_age_seconds',
  'jobbers_jobs',
  'jobbers_jobs_running',
  'jobbers_jobs_rate_limited',
  'jobbers_incidents',
  'jobbers_job_transitions_total',
  'jobbers_tasks_selected_total',
  'jobbers_time_in_queue_seconds',
  'jobbers_tasks_processed_total',
  'jobbers_execution_time_seconds',
  'jobbers_end_to_end_latency_seconds',
  'jobbers_tasks_retried_total',
  'jobbers_tasks_timed_out_total',
  'jobbers_cleaner_removed_total',
  'jobbers_cleaner_last_success_timestamp_seconds',
  'jobbers_exporter_lag_seconds',
  'jobbers_exporter_recounting',
  'jobbers_completions_rejected_total',
];
/** Per-process metrics of managers and workers (and the health of their metrics): summed across instances as usual. */
const processMetrics = [
  'jobbers_http_requests_total',
  'jobbers_http_request_duration_seconds',
  'jobbers_http_inflight_requests',
  'jobbers_manager_nodejs_eventloop_lag_p99_seconds',
  'jobbers_manager_nodejs_eventloop_lag_max_seconds',
  'jobbers_worker_running_tasks',
  'jobbers_worker_capacity',
  'jobbers_cluster_metrics_up',
  'jobbers_metrics_flush_failures_total',
  'jobbers_metrics_dropped_increments_total',
  'jobbers_process_errors_total',
];
const knownMetrics = new Set([...clusterMetrics, ...processMetrics]);
const aggregators = new Set([
  'sum',
  'avg',
  'min',
  'max',
  'count',
  'group',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'quantile',
  'count_values',
]);

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: { expr?: string; datasource?: { uid?: string } }[];
  panels?: Panel[];
}

const dashboard = JSON.parse(read('deploy/grafana/dashboards/jobbers.json'));
const allPanels: Panel[] = (dashboard.panels as Panel[]).flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = allPanels.filter((p) => p.type !== 'row');
const panelExprs = queryPanels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr ?? '' })),
);
const alertRules: any[] = parse(read('deploy/prometheus/alerts.yml')).groups.flatMap((g: any) => g.rules);
const kedaQueries = parseAllDocuments(read('deploy/kubernetes/keda-scaledobject.yaml'))
  .map((d) => d.toJS())
  .filter((d) => d?.kind === 'ScaledObject')
  .flatMap((d) => d.spec.triggers.filter((t: any) => t.type === 'prometheus'))
  .map((t: any) => ({ where: 'KEDA trigger', expr: String(t.metadata.query) }));
const allExprs = [
  ...panelExprs,
  ...alertRules.map((r) => ({ where: `alert ${r.alert}`, expr: String(r.expr) })),
  ...kedaQueries,
];

/** Metric names in an expression, histogram series folded into their histogram. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/jobbers_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''));
}

/** Blanks out string literals so their contents cannot be taken for parentheses or names. */
function withoutStrings(expr: string): string {
  return expr.replace(/"(?:[^"\\]|\\.)*"/g, (s) => `"${' '.repeat(s.length - 2)}"`);
}

function matchingOpen(text: string, close: number): number {
  let depth = 0;
  for (let i = close; i >= 0; i--) {
    if (text[i] === ')') depth++;
    else if (text[i] === '(' && --depth === 0) return i;
  }
  return -1;
}

/** The identifier just before `index` (skipping blanks), or '' when there is none. */
function identifierBefore(text: string, index: number): { name: string; start: number } {
  const match = /([A-Za-z_][A-Za-z0-9_]*)\s*$/.exec(text.slice(0, index));
  return match ? { name: match[1]!, start: match.index } : { name: '', start: index };
}

/** The aggregation operators enclosing position `at`, innermost first. */
function enclosingAggregations(expr: string, at: number): string[] {
  const text = withoutStrings(expr);
  const found: string[] = [];
  let depth = 0;
  for (let i = at - 1; i >= 0; i--) {
    if (text[i] === ')') depth++;
    else if (text[i] === '(') {
      if (depth > 0) {
        depth--;
        continue;
      }
      let before = identifierBefore(text, i);
      const beforeParen = text.slice(0, i).trimEnd();
      if (!before.name && beforeParen.endsWith(')')) {
        // `max by (queue, task) (...)`: step over the grouping clause to the operator.
        const clauseOpen = matchingOpen(text, beforeParen.length - 1);
        const keyword = identifierBefore(text, clauseOpen);
        if (keyword.name === 'by' || keyword.name === 'without')
          before = identifierBefore(text, keyword.start);
      }
      if (aggregators.has(before.name)) found.push(before.name);
    }
  }
  return found;
}

/** Occurrences of cluster-wide metrics whose innermost aggregation is not a max over instances. */
function clusterMetricsNotUnderMax(expr: string): string[] {
  const offenders: string[] = [];
  for (const match of withoutStrings(expr).matchAll(/jobbers_[a-z_]+/g)) {
    const name = match[0].replace(/_(bucket|sum|count)$/, '');
    if (!clusterMetrics.includes(name)) continue;
    const innermost = enclosingAggregations(expr, match.index!)[0];
    if (innermost !== 'max') offenders.push(`${match[0]} (innermost aggregation: ${innermost ?? 'none'})`);
  }
  return offenders;
}

test('the duplicate check itself tells max from sum', () => {
  assert.deepEqual(clusterMetricsNotUnderMax('max by (queue, task) (jobbers_jobs_available)'), []);
  assert.deepEqual(
    clusterMetricsNotUnderMax(
      'sum by (queue) (max by (queue, task) (rate(jobbers_tasks_processed_total[5m])))',
    ),
    [],
  );
  assert.deepEqual(
    clusterMetricsNotUnderMax(
      'histogram_quantile(0.95, max by (le, queue) (rate(jobbers_time_in_queue_seconds_bucket{queue=~"(a|b)"}[1m])))',
    ),
    [],
  );
  assert.deepEqual(
    clusterMetricsNotUnderMax('time() - max(jobbers_cleaner_last_success_timestamp_seconds)'),
    [],
  );
  assert.equal(clusterMetricsNotUnderMax('sum by (queue) (jobbers_jobs_available)').length, 1);
  assert.equal(clusterMetricsNotUnderMax('max(sum by (queue) (jobbers_jobs_available))').length, 1);
  assert.equal(clusterMetricsNotUnderMax('jobbers_incidents > 0').length, 1);
  assert.deepEqual(clusterMetricsNotUnderMax('sum by (route) (rate(jobbers_http_requests_total[1m]))'), []);
});

test('the dashboard is one Grafana dashboard on the provisioned Prometheus', () => {
  assert.equal(dashboard.uid, 'jobbers');
  assert.ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
  assert.ok(queryPanels.length >= 10, `only ${queryPanels.length} panels`);
  const ids = allPanels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
});

test('every panel draws from datasource uid prometheus with at least one expr', () => {
  for (const panel of queryPanels) {
    assert.ok(['timeseries', 'stat', 'bargauge'].includes(panel.type), `${panel.title}: type ${panel.type}`);
    assert.equal(panel.datasource?.uid, 'prometheus', `${panel.title}: datasource`);
    assert.equal(panel.datasource?.type, 'prometheus', `${panel.title}: datasource type`);
    const targets = panel.targets ?? [];
    assert.ok(targets.length > 0, `${panel.title}: no targets`);
    for (const target of targets) {
      assert.ok(target.expr?.trim(), `${panel.title}: target without expr`);
      if (target.datasource)
        assert.equal(target.datasource.uid, 'prometheus', `${panel.title}: target datasource`);
    }
  }
});

test('the queue and task variables come from jobbers_jobs_available', () => {
  const variables = dashboard.templating.list as any[];
  for (const name of ['queue', 'task']) {
    const variable = variables.find((v) => v.name === name);
    assert.ok(variable, `variable ${name}`);
    assert.equal(variable.datasource.uid, 'prometheus');
    const query = typeof variable.query === 'string' ? variable.query : variable.query.query;
    assert.match(query, new RegExp(`^label_values\\(jobbers_jobs_available.*, ${name}\\)$`));
    assert.equal(variable.allValue, '.*', `${name}: "All" must be a regex that matches every value`);
  }
});

test('panel queries use only variables that plain Prometheus can stand in for', () => {
  const allowed = new Set(['$queue', '$task', '$__rate_interval', '$__interval']);
  for (const { where, expr } of panelExprs) {
    for (const variable of expr.match(/\$\{?\w+\}?/g) ?? []) {
      assert.ok(allowed.has(variable), `${where}: variable ${variable} in ${expr}`);
    }
    for (const match of expr.matchAll(/(queue|task)\s*(!?=~?)\s*"\$(queue|task)"/g)) {
      assert.equal(match[2], '=~', `${where}: use ${match[1]}=~"$${match[3]}" so multi-select and All work`);
    }
  }
});

test('every metric used by a panel, an alert or the KEDA trigger is in the contract', () => {
  for (const { where, expr } of allExprs) {
    for (const name of metricNames(expr)) {
      assert.ok(knownMetrics.has(name), `${where}: unknown metric ${name} in ${expr}`);
    }
  }
});

test('every contract metric is drawn by at least one panel', () => {
  const drawn = new Set(panelExprs.flatMap(({ expr }) => metricNames(expr)));
  const missing = [...knownMetrics].filter((name) => !drawn.has(name));
  assert.deepEqual(missing, []);
});

test('no cluster-wide metric is summed across manager instances', () => {
  for (const { where, expr } of allExprs) {
    assert.deepEqual(clusterMetricsNotUnderMax(expr), [], `${where}: wrap it in max by (...) first: ${expr}`);
  }
});

test('every alert rule has an expr, a severity and a summary and description', () => {
  const names = alertRules.map((r) => r.alert);
  assert.equal(new Set(names).size, names.length, 'alert names are unique');
  for (const expected of [
    'JobbersBacklogGrowing',
    'JobbersBacklogTooOld',
    'JobbersIncidentsOpen',
    'JobbersHighRetryRate',
    'JobbersNoWorkerUp',
    'JobbersClusterMetricsDown',
    'JobbersMetricsFlushFailing',
    'JobbersMetricsIncrementsDropped',
  ]) {
    assert.ok(names.includes(expected), `alert ${expected}`);
  }
  for (const rule of alertRules) {
    assert.equal(typeof rule.expr, 'string', `${rule.alert}: expr`);
    assert.ok(rule.expr.trim(), `${rule.alert}: empty expr`);
    assert.ok(['critical', 'warning', 'info'].includes(rule.labels?.severity), `${rule.alert}: severity`);
    assert.ok(rule.annotations?.summary, `${rule.alert}: summary`);
    assert.ok(rule.annotations?.description, `${rule.alert}: description`);
  }
});

test('the metrics reference documents every metric the dashboard may use', () => {
  const reference = read('docs/observability.md');
  for (const name of knownMetrics)
    assert.ok(reference.includes(`\`${name}\``), `docs/observability.md: ${name}`);
});

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
test('promtool accepts the Prometheus config and the alert rules', {
  skip: promtool.error ? 'promtool is not installed (apt-get install prometheus)' : false,
}, () => {
  for (const args of [
    ['check', 'config', '--syntax-only', 'deploy/prometheus/prometheus.yml'],
    ['check', 'rules', 'deploy/prometheus/alerts.yml'],
  ]) {
    const result = spawnSync('promtool', args, { cwd: root, encoding: 'utf8' });
    assert.equal(result.status, 0, `promtool ${args.join(' ')}:\n${result.stdout}${result.stderr}`);
  }
});
