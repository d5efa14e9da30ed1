// docker-compose.yml and what it mounts hold together: every service is there and health-checked,
// every file it mounts or builds from exists, and Prometheus and Grafana point at the right services.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
const exists = (path: string) => existsSync(new URL(path, root));

const compose = parse(read('docker-compose.yml'));
const services: Record<string, any> = compose.services;
const jobbersServices = ['manager', 'worker', 'cleaner'];

interface Mount {
  source: string;
  target: string;
  bind: boolean;
}

function mounts(service: any): Mount[] {
  return (service.volumes ?? []).map((volume: any): Mount => {
    if (typeof volume === 'string') {
      const [source, target] = volume.split(':');
      return { source, target, bind: /^(\.|\/|~)/.test(source) };
    }
    return { source: volume.source, target: volume.target, bind: volume.type === 'bind' };
  });
}

function publishedPorts(service: any): { published: number; target: number }[] {
  return (service.ports ?? []).map((port: any) => {
    if (typeof port === 'object') return { published: Number(port.published), target: Number(port.target) };
    const parts = String(port).split(':');
    return { published: Number(parts.at(-2) ?? parts.at(-1)), target: Number(parts.at(-1)) };
  });
}

function envOf(service: any): Record<string, string> {
  const env = service.environment ?? {};
  if (!Array.isArray(env)) return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  return Object.fromEntries(env.map((entry: string) => entry.split(/=(.*)/s).slice(0, 2)));
}

const commandOf = (service: any) =>
  Array.isArray(service.command) ? service.command.join(' ') : String(service.command ?? '');

test('the stack has redis, manager, worker, cleaner, prometheus and grafana, each health-checked', () => {
  for (const name of ['redis', 'manager', 'worker', 'cleaner', 'prometheus', 'grafana']) {
    const service = services[name];
    assert.ok(service, `service ${name}`);
    const check = service.healthcheck?.test;
    assert.ok(Array.isArray(check) ? check.length > 1 : Boolean(check), `${name}: healthcheck.test`);
    assert.notEqual(service.healthcheck?.disable, true, `${name}: healthcheck disabled`);
  }
});

test('depends_on waits only for services that have a healthcheck', () => {
  for (const [name, service] of Object.entries(services)) {
    const dependsOn = service.depends_on ?? {};
    if (Array.isArray(dependsOn)) continue;
    for (const [dependency, { condition }] of Object.entries<any>(dependsOn)) {
      assert.ok(services[dependency], `${name} depends on unknown service ${dependency}`);
      if (condition === 'service_healthy')
        assert.ok(services[dependency].healthcheck, `${dependency}: healthcheck`);
    }
  }
  for (const name of jobbersServices) {
    assert.equal(services[name].depends_on?.redis?.condition, 'service_healthy', `${name} waits for redis`);
  }
});

test('the manager publishes 8080 and runs the manager bin', () => {
  assert.ok(
    publishedPorts(services.manager).some((p) => p.published === 8080 && p.target === 8080),
    'manager ports: 8080:8080',
  );
  assert.match(commandOf(services.manager), /packages\/manager\/dist\/bin\.js/);
});

test('workers run replicated, unpublished, with metrics on 9464', () => {
  const worker = services.worker;
  assert.ok(Number(worker.deploy?.replicas) >= 2, `worker replicas: ${worker.deploy?.replicas}`);
  assert.equal(worker.container_name, undefined, 'a container_name would forbid replicas');
  assert.deepEqual(publishedPorts(worker), [], 'published ports would clash between replicas');
  assert.equal(envOf(worker).WORKER_METRICS_PORT, '9464');
  assert.match(commandOf(worker), /packages\/worker\/dist\/bin\.js/);
  assert.match(JSON.stringify(worker.healthcheck.test), /127\.0\.0\.1:9464\/healthz/);
});

test('the cleaner runs jobbers-cleaner on a schedule', () => {
  const command = commandOf(services.cleaner);
  assert.match(command, /while true/);
  assert.match(
    command,
    /packages\/cleaner\/dist\/bin\.js --state completed --state failed --older-than 7d --json/,
  );
  assert.match(command, /sleep \d+/);
});

test('manager, worker and cleaner share the Redis, prefix and tasks module', () => {
  const envs = jobbersServices.map((name) => envOf(services[name]));
  for (const [i, env] of envs.entries()) {
    assert.equal(env.REDIS_URL, 'redis://redis:6379', `${jobbersServices[i]}: REDIS_URL`);
    assert.equal(env.JOBBERS_TASKS, '@jobbers/examples', `${jobbersServices[i]}: JOBBERS_TASKS`);
    assert.equal(env.JOBBERS_PREFIX, envs[0]!.JOBBERS_PREFIX, `${jobbersServices[i]}: JOBBERS_PREFIX`);
  }
});

test('every bind-mounted host path exists', () => {
  let binds = 0;
  for (const [name, service] of Object.entries(services)) {
    for (const mount of mounts(service).filter((m) => m.bind)) {
      binds++;
      assert.ok(mount.source.startsWith('./'), `${name}: mount ${mount.source} outside the repository`);
      assert.ok(exists(mount.source), `${name}: ${mount.source} does not exist`);
    }
  }
  assert.ok(binds >= 3, 'prometheus config and grafana provisioning and dashboards are mounted');
});

test('every build context has a Dockerfile, and the bins it starts are the packages bins', () => {
  for (const [name, service] of Object.entries(services)) {
    if (!service.build) continue;
    const context = typeof service.build === 'string' ? service.build : (service.build.context ?? '.');
    const dockerfile =
      typeof service.build === 'string' ? 'Dockerfile' : (service.build.dockerfile ?? 'Dockerfile');
    assert.ok(exists(`${context.replace(/\/?$/, '/')}${dockerfile}`), `${name}: ${context}/${dockerfile}`);
  }
  for (const name of jobbersServices) assert.ok(services[name].build, `${name} is built from the repository`);
  const dockerfile = read('Dockerfile');
  assert.match(dockerfile, /^FROM node:20-bookworm-slim/m);
  assert.match(dockerfile, /npm ci/);
  assert.match(dockerfile, /npm run build/);
  assert.match(dockerfile, /^CMD \["node", "packages\/manager\/dist\/bin\.js"\]/m);
  for (const pkg of ['manager', 'worker', 'cleaner']) {
    // The package's bin is a committed shim (linked by npm before any build) that loads dist/bin.js,
    // the file compose and Kubernetes start.
    const bins = Object.values<string>(JSON.parse(read(`packages/${pkg}/package.json`)).bin ?? {});
    assert.deepEqual(bins, [`./bin/jobbers-${pkg}.js`], `packages/${pkg} bin`);
    assert.match(read(`packages/${pkg}/bin/jobbers-${pkg}.js`), /import\('\.\.\/dist\/bin\.js'\)/);
  }
  const ignored = read('.dockerignore').split('\n');
  assert.ok(ignored.includes('**/node_modules'), '.dockerignore keeps node_modules out of the context');
});

test('Prometheus scrapes every manager and worker replica through the compose DNS', () => {
  const mount = mounts(services.prometheus).find((m) => m.target === '/etc/prometheus');
  assert.equal(mount?.source, './deploy/prometheus');
  const config = parse(read('deploy/prometheus/prometheus.yml'));
  assert.equal(config.global.scrape_interval, '5s');
  const expected = { 'jobbers-manager': ['manager', 8080], 'jobbers-worker': ['worker', 9464] };
  for (const [job, [service, port]] of Object.entries(expected)) {
    const scrape = config.scrape_configs.find((s: any) => s.job_name === job);
    assert.ok(scrape, `scrape job ${job}`);
    assert.equal(scrape.metrics_path ?? '/metrics', '/metrics');
    const [sd] = scrape.dns_sd_configs;
    assert.deepEqual(sd.names, [service]);
    assert.equal(sd.type, 'A');
    assert.equal(sd.port, port);
    assert.ok(services[service as string], `${job} scrapes the compose service ${service}`);
  }
  for (const file of config.rule_files) assert.ok(exists(`deploy/prometheus/${file}`), `rule file ${file}`);
});

test('Grafana is provisioned with the Prometheus data source and the dashboards folder', () => {
  const grafana = mounts(services.grafana);
  const provisioning = grafana.find((m) => m.target === '/etc/grafana/provisioning');
  const dashboards = grafana.find((m) => m.target === '/var/lib/grafana/dashboards');
  assert.equal(provisioning?.source, './deploy/grafana/provisioning');
  assert.equal(dashboards?.source, './deploy/grafana/dashboards');
  assert.equal(envOf(services.grafana).GF_AUTH_ANONYMOUS_ENABLED, 'true');

  const [datasource] = parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')).datasources;
  assert.equal(datasource.uid, 'prometheus');
  assert.equal(datasource.type, 'prometheus');
  assert.equal(datasource.url, 'http://prometheus:9090');
  assert.ok(publishedPorts(services.prometheus).some((p) => p.target === 9090));

  const [provider] = parse(read('deploy/grafana/provisioning/dashboards/jobbers.yml')).providers;
  assert.equal(provider.type, 'file');
  assert.equal(provider.options.path, dashboards.target);
  assert.ok(exists('deploy/grafana/dashboards/jobbers.json'));
});

test('workers get longer to stop than WORKER_SHUTDOWN_GRACE_MS, in compose and on Kubernetes', () => {
  const seconds = (duration: string) => Number(/^(\d+)s$/.exec(duration)?.[1]);
  const composeGraceMs = Number(envOf(services.worker).WORKER_SHUTDOWN_GRACE_MS);
  assert.ok(seconds(services.worker.stop_grace_period) * 1000 > composeGraceMs, 'compose stop_grace_period');

  const deployment = parseAllDocuments(read('deploy/kubernetes/worker.yaml'))
    .map((d) => d.toJS())
    .find((d) => d?.kind === 'Deployment');
  const pod = deployment.spec.template.spec;
  const env = Object.fromEntries(pod.containers[0].env.map((e: any) => [e.name, e.value]));
  assert.equal(env.WORKER_METRICS_PORT, '9464');
  assert.ok(pod.terminationGracePeriodSeconds * 1000 > Number(env.WORKER_SHUTDOWN_GRACE_MS));
});
