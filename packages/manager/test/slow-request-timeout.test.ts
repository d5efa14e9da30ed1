// Trickling request bodies are cut off after the request timeout, and the manager keeps answering
// other requests meanwhile.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';

let redis: RedisServer;
let manager: TestManager;

before(async () => {
  redis = await startRedisServer();
  manager = await startTestManager({
    redisUrl: redis.url,
    prefix: uniquePrefix('slow-body'),
    extra: { requestTimeoutMs: 1000 },
  });
});
after(async () => {
  await manager?.close();
  await redis?.stop();
});

/** A POST whose body never completes: one byte now and then, until the server hangs up. */
function trickle(baseUrl: string) {
  const { port } = new URL(baseUrl);
  const socket = net.connect(Number(port), '127.0.0.1');
  const state = { closed: false, reply: '' };
  socket.on('data', (chunk) => {
    state.reply += chunk.toString();
  });
  socket.on('close', () => {
    state.closed = true;
    clearInterval(timer);
  });
  socket.on('error', () => {});
  socket.write(
    'POST /v1/tasks HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{',
  );
  const timer = setInterval(() => {
    if (!socket.destroyed) socket.write(' ');
  }, 200);
  return { state, stop: () => socket.destroy() };
}

test('slow request bodies are timed out while the manager stays responsive', async () => {
  const slow = Array.from({ length: 20 }, () => trickle(manager.baseUrl));
  try {
    assert.equal((await manager.request('GET', '/healthz')).status, 200);
    const submitted = await manager.request('POST', '/v1/tasks', { task: 'example.echo', params: {} });
    assert.equal(submitted.status, 201);
    await waitFor(() => slow.every((s) => s.state.closed), {
      timeoutMs: 15_000,
      what: 'every trickling request to be cut off',
    });
    for (const s of slow) {
      assert.match(s.state.reply, /^HTTP\/1\.1 408/);
      assert.equal(JSON.parse(s.state.reply.split('\r\n\r\n')[1]!).error.code, 'REQUEST_TIMEOUT');
    }
  } finally {
    for (const s of slow) s.stop();
  }
});
