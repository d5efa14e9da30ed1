// Each filter alone and combined, --limit and --dry-run, run through the real jobbers-cleaner bin
// against jobs BullMQ itself put in each state.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { clusterMetrics, metricHashKey } from '@jobbers/core';
import { Redis } from 'ioredis';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { runCleanerBin } from './support/cli.js';
import { cleanerStateOf, isFinished, isOld, standardJobs } from './support/fixture.js';
import { existingIds, type SeedJob, seedJobs } from './support/seed.js';

let server: RedisServer;
let redis: Redis;
const jobs = standardJobs();

before(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
});

after(async () => {
  redis?.disconnect();
  await server?.stop();
});

async function seeded(): Promise<{
  prefix: string;
  run: (args: string[]) => ReturnType<typeof runCleanerBin>;
}> {
  const prefix = uniquePrefix('filters');
  await seedJobs(server.url, prefix, jobs);
  return { prefix, run: (args) => runCleanerBin({ redisUrl: server.url, prefix }, args) };
}

/** Runs the cleaner and checks that exactly the jobs `removed` selects are gone, and the report agrees. */
async function expectRemoves(args: string[], removed: (job: SeedJob) => boolean) {
  const { prefix, run } = await seeded();
  const result = await run([...args, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const expectedGone = jobs.filter(removed);
  assert.ok(expectedGone.length > 0, 'the case removes something');
  assert.deepEqual(
    (await existingIds(redis, prefix, jobs)).sort(),
    jobs
      .filter((j) => !removed(j))
      .map((j) => j.id)
      .sort(),
  );
  assert.equal(result.report!.removed.total, expectedGone.length);
  assert.equal(result.report!.matched.total, expectedGone.length);
  const byState: Record<string, number> = {};
  for (const job of expectedGone) byState[cleanerStateOf(job)] = (byState[cleanerStateOf(job)] ?? 0) + 1;
  assert.deepEqual(result.report!.removed.byState, byState);
  return { prefix, result };
}

test('--state alone removes that state in every queue found in Redis', async () => {
  const { result } = await expectRemoves(['--state', 'failed'], (j) => j.state === 'failed');
  assert.deepEqual(result.report!.queues, ['alpha', 'beta']);
});

test('--queue alone removes the finished tasks of that queue only (completed and failed by default)', async () => {
  await expectRemoves(['--queue', 'alpha'], (j) => j.queue === 'alpha' && isFinished(j));
});

test('--task alone removes the finished tasks of that type in every queue', async () => {
  await expectRemoves(['--task', 'mail.send'], (j) => j.task === 'mail.send' && isFinished(j));
});

test('--older-than alone removes finished tasks submitted before now minus the duration', async () => {
  await expectRemoves(['--older-than', '1d'], (j) => isOld(j) && isFinished(j));
});

test('--before alone removes finished tasks submitted before the ISO time', async () => {
  const anHourAgo = new Date(Date.now() - 3_600_000).toISOString();
  await expectRemoves(['--before', anHourAgo], (j) => isOld(j) && isFinished(j));
});

test('--state waiting takes wait and prioritized jobs; --state delayed the delayed ones', async () => {
  await expectRemoves(
    ['--state', 'waiting', '--state', 'delayed', '--queue', 'beta'],
    (j) => j.queue === 'beta' && ['waiting', 'prioritized', 'delayed'].includes(j.state),
  );
});

test('filters combine: queue, task, several states and age must all match', async () => {
  const { result } = await expectRemoves(
    ['--queue', 'beta', '--task', 'report.build', '--state', 'waiting,completed', '--older-than', '2h'],
    (j) =>
      j.queue === 'beta' &&
      j.task === 'report.build' &&
      ['waiting', 'prioritized', 'completed'].includes(j.state) &&
      isOld(j),
  );
  assert.deepEqual(result.report!.removed.rows, [
    { queue: 'beta', task: 'report.build', state: 'completed', count: 1 },
    { queue: 'beta', task: 'report.build', state: 'waiting', count: 2 },
  ]);
});

test('--limit removes at most N matching tasks and says it stopped there', async () => {
  const { prefix, run } = await seeded();
  const result = await run(['--state', 'completed', '--limit', '3', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.report!.removed.total, 3);
  assert.equal(result.report!.limitReached, true);
  const completed = jobs.filter((j) => j.state === 'completed');
  const left = await existingIds(redis, prefix, completed);
  assert.equal(left.length, completed.length - 3);
});

async function snapshot(prefix: string): Promise<string[]> {
  const keys = (await redis.keys(`${prefix}:*`)).sort();
  const lines: string[] = [];
  for (const key of keys) {
    const type = await redis.type(key);
    // Sorted fields: reads may finish an incremental rehash, which reorders HGETALL's answer.
    if (type === 'hash')
      lines.push(`${key} ${JSON.stringify(Object.entries(await redis.hgetall(key)).sort())}`);
    else if (type === 'zset')
      lines.push(`${key} ${(await redis.zrange(key, 0, -1, 'WITHSCORES')).join(',')}`);
    else if (type === 'list') lines.push(`${key} ${(await redis.lrange(key, 0, -1)).join(',')}`);
    else if (type === 'stream') lines.push(`${key} ${await redis.xlen(key)}`);
    else lines.push(`${key} ${type}`);
  }
  return lines;
}

test('--dry-run reports what it would remove and changes nothing; the real run then removes exactly that', async () => {
  const { prefix, run } = await seeded();
  const args = ['--state', 'completed', '--state', 'waiting', '--older-than', '1h'];
  const before = await snapshot(prefix);
  const dry = await run([...args, '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.deepEqual(await snapshot(prefix), before, 'a dry run writes nothing, metrics included');
  assert.equal(dry.report!.dryRun, true);
  assert.equal(dry.report!.removed.total, 0);
  const expected = jobs.filter((j) => isOld(j) && ['completed', 'waiting', 'prioritized'].includes(j.state));
  assert.equal(dry.report!.matched.total, expected.length);

  const human = await run([...args, '--dry-run']);
  assert.match(human.stdout, new RegExp(`Dry run: would remove ${expected.length} tasks`));
  assert.match(human.stdout, /alpha\s+mail\.send\s+completed\s+1/);

  const real = await run([...args, '--json']);
  assert.equal(real.code, 0, real.stderr);
  assert.deepEqual(real.report!.removed.rows, dry.report!.matched.rows);
});

test('a real run counts removals in jobbers_cleaner_removed_total and records its success time', async () => {
  const { prefix, run } = await seeded();
  const startedSeconds = Math.floor(Date.now() / 1000);
  const result = await run(['--queue', 'alpha', '--state', 'completed', '--state', 'delayed']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^Removed 8 tasks from 1 queue/);
  assert.match(result.stdout, /alpha\s+report\.build\s+delayed\s+2/);
  assert.deepEqual(await redis.hgetall(metricHashKey(prefix, clusterMetrics.cleanerRemoved)), {
    'alpha|mail.send|completed': '2',
    'alpha|mail.send|delayed': '2',
    'alpha|report.build|completed': '2',
    'alpha|report.build|delayed': '2',
  });
  const lastSuccess = Number(await redis.hget(metricHashKey(prefix, clusterMetrics.cleanerLastSuccess), ''));
  assert.ok(lastSuccess >= startedSeconds && lastSuccess <= Date.now() / 1000, `last success ${lastSuccess}`);
});
