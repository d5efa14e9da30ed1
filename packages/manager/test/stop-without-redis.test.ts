// A manager asked to stop while its Redis is gone exits instead of waiting for a Redis that may
// never come back: its exporter's last commit and its QUIT are given up after a bound.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { type ManagerProcess, startManagerProcess } from '../../../test/support/stack.js';

let manager: ManagerProcess | undefined;
after(async () => {
  if (manager?.child.exitCode === null) manager.child.kill('SIGKILL');
});

test('SIGTERM with Redis gone: the manager exits, saying why', { timeout: 60_000 }, async () => {
  const redis = await startRedisServer();
  manager = await startManagerProcess({ REDIS_URL: redis.url, JOBBERS_PREFIX: uniquePrefix('stop') });
  await redis.stop();
  manager.kill('SIGTERM');
  const timedOut = Symbol('still running');
  const outcome = await Promise.race([
    manager.exited,
    new Promise((resolve) => setTimeout(() => resolve(timedOut), 30_000)),
  ]);
  assert.notEqual(outcome, timedOut, `the manager did not exit: ${manager.output().slice(-2000)}`);
  assert.match(manager.output(), /manager stopping/);
  assert.match(manager.output(), /manager stop did not finish \(Redis unreachable\?\): exiting/);
});
