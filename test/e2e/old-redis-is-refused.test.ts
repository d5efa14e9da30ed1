// Jobbers needs Redis >= 7.0 (the exporter's trim detection): manager and worker read the server's
// version at start and refuse an older one with a message naming both versions. No Redis 6 binary
// is at hand, so a stub speaking RESP stands in for one: it answers INFO as Redis 6.2 and OK to
// everything else.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { isSupportedRedisVersion } from '@jobbers/core';
import { bins, runProcess } from '../support/processes.js';
import { freePort } from '../support/redis-server.js';

let stub: net.Server;
let url: string;

const info =
  '# Server\r\nredis_version:6.2.6\r\nredis_mode:standalone\r\nloading:0\r\nmaxmemory_policy:noeviction\r\n';

/** Replies to each RESP command in the stream: INFO with `info`, anything else +OK. */
function answer(socket: net.Socket) {
  let buffered = '';
  socket.on('data', (chunk) => {
    buffered += chunk.toString('latin1');
    for (;;) {
      const parsed = readCommand(buffered);
      if (!parsed) return;
      buffered = buffered.slice(parsed.length);
      if (parsed.name === 'INFO') socket.write(`$${Buffer.byteLength(info)}\r\n${info}\r\n`);
      else socket.write('+OK\r\n');
    }
  });
  socket.on('error', () => socket.destroy());
}

/** One RESP array of bulk strings from the front of `text`, or undefined while incomplete. */
function readCommand(text: string): { name: string; length: number } | undefined {
  const header = /^\*(\d+)\r\n/.exec(text);
  if (!header) return undefined;
  let at = header[0].length;
  const parts: string[] = [];
  for (let i = 0; i < Number(header[1]); i++) {
    const bulk = /^\$(\d+)\r\n/.exec(text.slice(at));
    if (!bulk) return undefined;
    const start = at + bulk[0].length;
    const end = start + Number(bulk[1]);
    if (text.length < end + 2) return undefined;
    parts.push(text.slice(start, end));
    at = end + 2;
  }
  return { name: (parts[0] ?? '').toUpperCase(), length: at };
}

before(async () => {
  const port = await freePort();
  stub = net.createServer(answer);
  await new Promise<void>((resolve) => stub.listen(port, '127.0.0.1', resolve));
  url = `redis://127.0.0.1:${port}`;
});
after(async () => {
  await new Promise((resolve) => stub.close(resolve));
});

test('versions below 7.0 are not supported', () => {
  for (const version of ['7.0.0', '7.0.15', '7.2.4', '8.0.1', '10.0.0'])
    assert.ok(isSupportedRedisVersion(version));
  for (const version of ['6.2.14', '6.0.0', '5.0.7', 'x'])
    assert.ok(!isSupportedRedisVersion(version), version);
});

for (const [name, bin, env] of [
  ['manager', bins.manager, { MANAGER_PORT: '0', MANAGER_HOST: '127.0.0.1' }],
  ['worker', bins.worker, { WORKER_METRICS_PORT: '0' }],
] as const) {
  test(`the ${name} refuses Redis 6.2 with a message naming the versions`, async () => {
    const result = await runProcess(
      bin,
      [],
      { REDIS_URL: url, JOBBERS_TASKS: '@jobbers/examples', JOBBERS_EXPORTER: 'off', ...env },
      20_000,
    );
    assert.equal(result.code, 1, result.output);
    assert.match(result.output, /Redis 6\.2\.6 is too old: Jobbers needs Redis >= 7\.0\.0/);
  });
}
