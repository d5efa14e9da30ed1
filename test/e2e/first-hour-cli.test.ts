// A newcomer's first hour with the three CLIs: they run by name from the repository (npm links them
// at install time, before dist/ exists, so the linked files must be committed), --help shows each
// setting with its variable and default, a bad setting reads as text, and the manager's info log
// holds one line per API request and none for probes and scrapes.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { bins, repoRoot, startProcess } from '../support/processes.js';
import { freePort, type RedisServer, startRedisServer, uniquePrefix } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

const clis = ['manager', 'worker', 'cleaner'] as const;

test('each CLI links to a committed file outside dist/, so npm links it before the first build', () => {
  const tracked = execFileSync('git', ['ls-files', 'packages'], { cwd: repoRoot, encoding: 'utf8' }).split(
    '\n',
  );
  for (const cli of clis) {
    const manifest = JSON.parse(readFileSync(path.join(repoRoot, 'packages', cli, 'package.json'), 'utf8'));
    const target = manifest.bin[`jobbers-${cli}`] as string;
    const file = path.posix.join('packages', cli, target);
    assert.ok(!file.includes('/dist/'), `${file} is built, so npm ci finds nothing to link`);
    assert.ok(tracked.includes(file), `${file} is not committed`);
    assert.ok(
      existsSync(path.join(repoRoot, 'node_modules', '.bin', `jobbers-${cli}`)),
      `jobbers-${cli} linked`,
    );
  }
});

test('the CLIs run by name without the registry, and --help shows the Redis setting and defaults', () => {
  for (const cli of clis) {
    const result = spawnSync('npx', ['--no-install', `jobbers-${cli}`, '--help'], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, npm_config_offline: 'true' },
    });
    assert.equal(result.status, 0, `jobbers-${cli}: ${result.stderr}`);
    const help = result.stdout.replace(/\s+/g, ' ');
    assert.match(help, /REDIS_URL/, cli);
    if (cli !== 'cleaner') {
      assert.match(help, /--redis-url <url>/, cli);
      assert.match(help, /--prefix <prefix>/, cli);
      assert.match(help, /default redis:\/\/127\.0\.0\.1:6379/, cli);
      assert.match(help, /--log-level/, cli);
      assert.match(help, /--redis-command-timeout .*default 1500/, cli);
    }
  }
});

let redis: RedisServer;
before(async () => {
  redis = await startRedisServer();
});
after(async () => {
  await redis?.stop();
});

test('a bad setting is reported as plain text naming it, not as a JSON log line', async () => {
  for (const cli of ['manager', 'worker'] as const) {
    const proc = startProcess(
      bins[cli],
      ['--redis-url', 'http://nowhere', '--tasks', '@jobbers/examples'],
      {},
    );
    const { code } = await proc.exited;
    assert.equal(code, 1, proc.output());
    assert.match(
      proc.output(),
      new RegExp(`^jobbers-${cli}: invalid configuration:\\n  - REDIS_URL "http://nowhere"`, 'm'),
    );
    assert.doesNotMatch(proc.output(), /"level":/);
  }
});

test('a bad log level or duration flag stops the manager and worker with a line of text', async () => {
  const cases = [
    {
      cli: 'manager',
      args: ['--log-level', 'bogus'],
      says: /^jobbers-manager: invalid configuration:\n {2}- LOG_LEVEL="bogus"/m,
    },
    {
      cli: 'worker',
      args: ['--log-level', 'bogus'],
      says: /^jobbers-worker: invalid configuration:\n {2}- LOG_LEVEL="bogus"/m,
    },
    {
      cli: 'manager',
      args: ['--exporter-lease', 'soon'],
      says: /^jobbers-manager: --exporter-lease "soon" must be a duration/m,
    },
    { cli: 'manager', args: ['--exporter', 'of'], says: /JOBBERS_EXPORTER="of" must be on or off/ },
  ] as const;
  for (const { cli, args, says } of cases) {
    const proc = startProcess(bins[cli], [...args, '--tasks', '@jobbers/examples'], {});
    const { code } = await proc.exited;
    assert.equal(code, 1, proc.output());
    assert.match(proc.output(), says);
    assert.doesNotMatch(proc.output(), /"level":|\n\s+at /, 'no log line, no stack');
  }
});

test('the manager logs one line per API request at info, none for /healthz and /metrics', async () => {
  const port = await freePort();
  const manager = startProcess(
    bins.manager,
    [
      '--redis-url',
      redis.url,
      '--prefix',
      uniquePrefix('first-hour'),
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--redis-command-timeout',
      '2s',
    ],
    { JOBBERS_TASKS: '@jobbers/examples', JOBBERS_EXPORTER: 'off' },
  );
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200, {
      what: 'the manager',
      // A cold start loads the app's modules; on a loaded 2-core runner that took over 10 s.
      timeoutMs: 30_000,
    });
    for (let i = 0; i < 3; i++) {
      await fetch(`${base}/healthz`);
      await fetch(`${base}/metrics`);
    }
    const submitted = await fetch(`${base}/v1/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task: 'example.echo', params: {} }),
    });
    assert.equal(submitted.status, 201);
    await fetch(`${base}/v1/queues/default`);
    await manager.waitForOutput(/"url":"\/v1\/queues\/default"/);
    const requestLines = manager
      .output()
      .split('\n')
      .filter((line) => /"reqId"/.test(line));
    assert.equal(requestLines.length, 2, requestLines.join('\n'));
    assert.match(requestLines[0]!, /"method":"POST".*"url":"\/v1\/tasks".*"statusCode":201/);
  } finally {
    await manager.stop();
  }
});
