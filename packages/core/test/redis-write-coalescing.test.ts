// The manager's connection sends the commands written within one turn of the event loop in one
// socket write, and each command still gets its own reply, in order.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { test } from 'node:test';
import { createRedisConnection } from '@jobbers/core';
import { useRedisServer } from '../../../test/support/redis-server.js';

const fixture = useRedisServer();

/** Counts the socket writes of the connection (each _write or _writev is one syscall at most). */
function countWrites(socket: Writable): { writes: number } {
  const count = { writes: 0 };
  const internals = socket as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>;
  for (const method of ['_write', '_writev'] as const) {
    const original = internals[method];
    internals[method] = function counted(this: unknown, ...args: unknown[]) {
      count.writes += 1;
      return original.apply(this, args);
    };
  }
  return count;
}

test('commands written in one turn leave in one socket write, each with its own reply', async () => {
  const connection = createRedisConnection(fixture.server.url);
  try {
    // Without an offline queue, commands fail until the connection is ready.
    if (connection.status !== 'ready') await once(connection, 'ready');
    await connection.ping();
    const count = countWrites((connection as unknown as { stream: Writable }).stream);
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => connection.echo(`m${i}`)));
    assert.deepEqual(
      replies,
      Array.from({ length: 50 }, (_, i) => `m${i}`),
    );
    assert.equal(count.writes, 1, 'the 50 commands of one turn are one write');
    // Commands of a later turn go out in a write of their own, not held back.
    assert.equal(await connection.echo('later'), 'later');
    assert.equal(count.writes, 2);
  } finally {
    connection.disconnect();
  }
});
