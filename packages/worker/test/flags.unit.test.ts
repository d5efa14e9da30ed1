// jobbers-worker flags fold into the variables they mirror; CLI durations take units.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFlagDurationMs as parseDurationMs } from '@jobbers/core';
import { parseProcesses, workerEnv } from '@jobbers/worker';

test('durations take ms, s, m, h, d; a bare number is milliseconds', () => {
  assert.equal(parseDurationMs('250', '--lease'), 250);
  assert.equal(parseDurationMs('500ms', '--lease'), 500);
  assert.equal(parseDurationMs('30s', '--lease'), 30_000);
  assert.equal(parseDurationMs('15m', '--lease'), 900_000);
  assert.equal(parseDurationMs('2h', '--lease'), 7_200_000);
  assert.equal(parseDurationMs('7d', '--lease'), 604_800_000);
  assert.throws(
    () => parseDurationMs('soon', '--shutdown-grace'),
    /--shutdown-grace "soon" must be a duration/,
  );
});

test('flags override the environment, in the variables loadWorkerConfig reads', () => {
  const env = workerEnv(
    {
      concurrency: '4',
      ttl: '100',
      shutdownGrace: '45s',
      lease: '10s',
      queueCapacity: 'default=2',
      redisCommandTimeout: '2s',
    },
    { WORKER_CONCURRENT_TASKS: '10', WORKER_ROLE: 'images' },
  );
  assert.equal(env.WORKER_CONCURRENT_TASKS, '4');
  assert.equal(env.WORKER_ROLE, 'images');
  assert.equal(env.WORKER_TTL, '100');
  assert.equal(env.WORKER_SHUTDOWN_GRACE_MS, '45000');
  assert.equal(env.WORKER_LEASE_MS, '10000');
  assert.equal(env.WORKER_QUEUE_CAPACITY, 'default=2');
  assert.equal(env.JOBBERS_REDIS_COMMAND_TIMEOUT_MS, '2000');
});

test('the Redis, prefix, roles, flush and log-level flags set their variables', () => {
  const env = workerEnv(
    { redisUrl: 'redis://r:6380', prefix: 'p', roles: 'a=default', metricsFlush: '2s', logLevel: 'warn' },
    { REDIS_URL: 'redis://old:6379' },
  );
  assert.equal(env.REDIS_URL, 'redis://r:6380');
  assert.equal(env.JOBBERS_PREFIX, 'p');
  assert.equal(env.JOBBERS_ROLES, 'a=default');
  assert.equal(env.JOBBERS_METRICS_FLUSH_MS, '2000');
  assert.equal(env.LOG_LEVEL, 'warn');
});

test('--processes is a whole number 1..256', () => {
  assert.equal(parseProcesses(undefined), undefined);
  assert.equal(parseProcesses('4'), 4);
  assert.throws(() => parseProcesses('0'), /--processes "0"/);
  assert.throws(() => parseProcesses('two'), /--processes "two"/);
});
