// Cron and Kubernetes read the exit code: 0 done, 1 runtime error (Redis down), 2 bad usage.
// Bad usage says what is wrong and removes nothing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import {
  freePort,
  type RedisServer,
  startRedisServer,
  uniquePrefix,
} from '../../../test/support/redis-server.js';
import { runCleanerBin } from './support/cli.js';
import { writeCompletedJobs } from './support/seed.js';

let server: RedisServer;
let redis: Redis;
const prefix = uniquePrefix('usage');
const jobCount = 20;

before(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
  await writeCompletedJobs(redis, prefix, 'default', {
    count: jobCount,
    task: 'example.echo',
    ageMs: 30 * 86_400_000,
  });
});

after(async () => {
  redis?.disconnect();
  await server?.stop();
});

const run = (args: string[], env: Record<string, string> = {}) =>
  runCleanerBin({ redisUrl: server.url, prefix, env }, args);

async function assertNothingRemoved() {
  assert.equal(await redis.zcard(`${prefix}:default:completed`), jobCount);
}

test('no filter at all is refused with exit 2, even with --limit or --dry-run', async () => {
  for (const args of [[], ['--limit', '5'], ['--dry-run'], ['--json']]) {
    const result = await run(args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /refusing to run without a filter/);
    assert.equal(result.stdout, '');
  }
  await assertNothingRemoved();
});

const badUsage: [string[], RegExp][] = [
  [['--state', 'active'], /--state "active" is not one of completed, failed, waiting, delayed/],
  [['--state', 'completed', '--older-than', '7days'], /--older-than "7days" is not a duration/],
  [['--before', 'yesterday'], /--before "yesterday" is not an ISO 8601 time/],
  [['--before', '2025-13-45'], /--before "2025-13-45" is not an ISO 8601 time/],
  [['--before', '2025-01-01', '--older-than', '1d'], /--before and --older-than .* give one of them/],
  [['--state', 'completed', '--limit', '0'], /--limit "0" must be a whole number >= 1/],
  [['--state', 'completed', '--limit', 'ten'], /--limit "ten" must be a whole number >= 1/],
  [['--queue', 'a:b'], /--queue "a:b" is not a queue name/],
  [['--state', 'completed', '--bogus'], /unknown option '--bogus'/],
  [['--state', 'completed', 'stray'], /too many arguments/],
  [['--state'], /argument missing/],
  [
    ['--task', 'nope.task', '--tasks', '@jobbers/examples'],
    /--task "nope.task" is not a task type of @jobbers\/examples/,
  ],
  [
    ['--queue', 'nowhere', '--tasks', '@jobbers/examples'],
    /--queue "nowhere" is not a queue of @jobbers\/examples/,
  ],
  [
    ['--state', 'completed', '--tasks', './no/such/module.js'],
    /cannot load tasks module "\.\/no\/such\/module\.js"/,
  ],
];

test('bad flags exit 2 with a message naming the flag, and remove nothing', async () => {
  const results = await Promise.all(badUsage.map(([args]) => run(args)));
  results.forEach((result, i) => {
    const [args, message] = badUsage[i]!;
    assert.equal(result.code, 2, `${args.join(' ')} -> ${result.code}: ${result.stderr}`);
    assert.match(result.stderr, message, args.join(' '));
    assert.equal(result.stdout, '', args.join(' '));
  });
  await assertNothingRemoved();
});

test('bad REDIS_URL or JOBBERS_PREFIX exit 2 naming the variable', async () => {
  const badPrefix = await runCleanerBin({ redisUrl: server.url, prefix: 'has space' }, [
    '--state',
    'completed',
  ]);
  assert.equal(badPrefix.code, 2);
  assert.match(badPrefix.stderr, /JOBBERS_PREFIX="has space"/);
  const badUrl = await runCleanerBin({ redisUrl: 'http://localhost:1', prefix }, ['--state', 'completed']);
  assert.equal(badUrl.code, 2);
  assert.match(badUrl.stderr, /REDIS_URL "http:\/\/localhost:1" must start with redis:\/\//);
  await assertNothingRemoved();
});

test('--older-than 0s selects everything submitted up to now', async () => {
  const result = await run(['--state', 'completed', '--older-than', '0s', '--dry-run', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(JSON.parse(result.stdout).matched.total, jobCount, result.stdout);
  await assertNothingRemoved();
});

test('several problems are reported together', async () => {
  const result = await run(['--state', 'paused', '--limit', '-1', '--older-than', 'soon']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--state "paused"/);
  assert.match(result.stderr, /--limit "-1"/);
  assert.match(result.stderr, /--older-than "soon"/);
});

test('--help exits 0 and documents the flags', async () => {
  const result = await run(['--help']);
  assert.equal(result.code, 0);
  for (const flag of [
    '--queue',
    '--task',
    '--state',
    '--before',
    '--older-than',
    '--dry-run',
    '--limit',
    '--json',
  ]) {
    assert.ok(result.stdout.includes(flag), flag);
  }
});

test('Redis down: exit 1 with a message saying Redis cannot be reached', async () => {
  const port = await freePort();
  const result = await runCleanerBin({ redisUrl: `redis://:secret@127.0.0.1:${port}`, prefix }, [
    '--state',
    'completed',
    '--json',
  ]);
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    new RegExp(`cannot reach Redis at redis://:\\*\\*\\*@127.0.0.1:${port}.*ECONNREFUSED`),
  );
  assert.doesNotMatch(result.stderr, /secret/);
});
