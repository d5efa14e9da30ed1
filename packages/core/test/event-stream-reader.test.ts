// The exporter's two ways of reading a queue's event stream agree entry for entry on a stream that
// BullMQ wrote, and the direct reader's own connection honours the URL's password, user and
// database, recovers from a killed connection, and fails fast and clearly when it cannot connect.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createRedisConnection, defineTask, LifecycleExporter, TaskRegistry } from '@jobbers/core';
import { Queue, Worker } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { clusterSamples, metricValue } from '../../../test/support/metrics.js';
import {
  freePort,
  type RedisServer,
  startRedisServer,
  startTlsRedisServer,
  uniquePrefix,
  useRedisServer,
} from '../../../test/support/redis-server.js';
import { waitFor } from '../../../test/support/wait.js';
import {
  createEventStreamReader,
  DirectStreamReader,
  type EventStreamReader,
  IoredisStreamReader,
  LuaStreamReader,
  luaScript,
} from '../src/metrics/event-stream-reader.js';
import type { StreamEvent } from '../src/metrics/lifecycle-book.js';

const fixture = useRedisServer();
const opened: { close(): void }[] = [];
after(() => {
  for (const resource of opened) resource.close();
});

function track<T extends { close(): void }>(resource: T): T {
  opened.push(resource);
  return resource;
}

const task = 'demo.job';
const registry = new TaskRegistry([defineTask({ name: task, queue: 'q', params: {}, run: () => null })]);

/** An exporter and a BullMQ queue on `url`, with a prefix of their own. */
async function exporterWithQueue(url: string, connectionName: string) {
  const connection = createRedisConnection(url, { blocking: true, connectionName });
  connection.on('error', () => {});
  const prefix = uniquePrefix(connectionName);
  const queue = new Queue('q', { connection, prefix });
  const exporter = new LifecycleExporter({ connection, prefix, queues: ['q'], blockMs: 50 }).start();
  await exporter.waitUntilReady();
  const add = (count: number) =>
    queue.addBulk(Array.from({ length: count }, () => ({ name: task, data: {} })));
  const available = async () =>
    metricValue(await clusterSamples(connection, prefix, registry), 'jobbers_jobs_available', { task });
  const close = async () => {
    await exporter.stop();
    await queue.close();
    connection.disconnect();
  };
  return { connection, prefix, exporter, add, available, close };
}

async function readAll(reader: EventStreamReader, stream: string, batch: number): Promise<StreamEvent[]> {
  const all: StreamEvent[] = [];
  let after = '0-0';
  for (;;) {
    const events = await reader.read(stream, after, batch);
    if (events.length === 0) return all;
    assert.ok(events.length <= batch);
    all.push(...events);
    after = events[events.length - 1]!.id;
  }
}

test('the direct, the Lua and the ioredis reader give the same events for a stream BullMQ wrote', async () => {
  const prefix = uniquePrefix('read');
  const connection = createRedisConnection(fixture.server.url, { blocking: true });
  const queue = new Queue('q', { connection, prefix });
  const jobs = Array.from({ length: 40 }, (_, k) => ({
    name: k % 3 === 0 ? 'démo.ünïcode' : 'demo.echo',
    data: { k },
    opts: { jobId: k % 5 === 0 ? `jöb-${k}` : undefined, attempts: 2 },
  }));
  await queue.addBulk(jobs);
  // Delayed jobs: their `delayed` events carry the time they are delayed to, which the book reads.
  const delayedTo = Date.now() + 60_000;
  await queue.add('demo.later', {}, { delay: 60_000 });
  const workerConnection = connection.duplicate({ maxRetriesPerRequest: null });
  const worker = new Worker(
    'q',
    async (job) => {
      if (job.data.k % 4 === 0) throw new Error(`failure of ${job.data.k}\r\n*2 not a reply`);
      return { big: 'x'.repeat(2000), k: job.data.k };
    },
    { connection: workerConnection, prefix, concurrency: 5 },
  );
  await waitFor(async () => (await queue.getCompletedCount()) + (await queue.getFailedCount()) === 40, {
    what: 'every job to finish',
  });
  await worker.close();
  workerConnection.disconnect();
  const stream = `${prefix}:q:events`;
  const direct = track(new DirectStreamReader(connection.options));
  const lua = track(new LuaStreamReader(connection));
  const fromDirect = await readAll(direct, stream, 7);
  const fromLua = await readAll(lua, stream, 7);
  assert.deepEqual(fromDirect, fromLua);
  assert.deepEqual(await readAll(new IoredisStreamReader(connection), stream, 7), fromDirect);
  assert.equal(fromDirect.length, await connection.xlen(stream));
  const kinds = new Set(fromDirect.map((e) => e.event));
  for (const kind of ['added', 'waiting', 'active', 'completed', 'failed', 'retries-exhausted'])
    assert.ok(kinds.has(kind), `the stream holds ${kind} events`);
  assert.ok(fromDirect.some((e) => e.event === 'added' && e.jobId === 'jöb-0' && e.extra === 'démo.ünïcode'));
  const delayed = fromDirect.find((e) => e.event === 'delayed');
  assert.ok(
    delayed && Number(delayed.extra) >= delayedTo,
    `a delayed event gives its time (${delayed?.extra})`,
  );
  assert.deepEqual(await direct.read(stream, fromDirect[fromDirect.length - 1]!.id, 10), []);
  await queue.close();
  connection.disconnect();
});

test('a password, an ACL user and a database in the URL are used by the direct reader', async () => {
  const { redis, server } = fixture;
  await redis.call('ACL', 'SETUSER', 'reader', 'on', '>reader-pw', '~*', '+@all');
  await redis.config('SET', 'requirepass', 'default-pw');
  try {
    const stream = uniquePrefix('auth');
    const writer = new Redis(`redis://:default-pw@127.0.0.1:${server.port}/3`);
    await writer.xadd(stream, '*', 'event', 'waiting', 'jobId', 'in-db-3');
    for (const url of [
      `redis://:default-pw@127.0.0.1:${server.port}/3`,
      `redis://reader:reader-pw@127.0.0.1:${server.port}/3`,
    ]) {
      const reader = track(new DirectStreamReader(new Redis(url, { lazyConnect: true }).options));
      const events = await reader.read(stream, '0-0', 10);
      assert.deepEqual(
        events.map((e) => e.jobId),
        ['in-db-3'],
        `${url} reads database 3`,
      );
    }
    const wrong = track(
      new DirectStreamReader(
        new Redis(`redis://:nope@127.0.0.1:${server.port}/3`, { lazyConnect: true }).options,
      ),
    );
    await assert.rejects(wrong.read(stream, '0-0', 10), /WRONGPASS/);
    const noPassword = track(
      new DirectStreamReader(new Redis(`redis://127.0.0.1:${server.port}/3`, { lazyConnect: true }).options),
    );
    await assert.rejects(noPassword.read(stream, '0-0', 10), /NOAUTH/);
    writer.disconnect();
  } finally {
    await redis.config('SET', 'requirepass', '');
    await redis.call('ACL', 'DELUSER', 'reader');
  }
});

test('a killed reader connection fails at most the read in progress; the next read connects again', async () => {
  const { redis, server } = fixture;
  const stream = uniquePrefix('kill');
  await redis.xadd(stream, '*', 'event', 'waiting', 'jobId', 'a');
  const reader = track(
    new DirectStreamReader(new Redis(server.url, { lazyConnect: true, connectionName: 'kill-test' }).options),
  );
  assert.equal((await reader.read(stream, '0-0', 10)).length, 1);
  const clientId = async () => {
    const list = (await redis.call('CLIENT', 'LIST')) as string;
    return /id=(\d+) .*name=kill-test:events /.exec(list)?.[1];
  };
  const first = await clientId();
  assert.ok(first, 'the reader names its connection after the connection name');
  await redis.call('CLIENT', 'KILL', 'ID', first);
  await reader.read(stream, '0-0', 10).catch((error: Error) => {
    assert.match(error.message, /closed|ECONNRESET|EPIPE/);
  });
  assert.equal((await reader.read(stream, '0-0', 10)).length, 1);
  const second = await clientId();
  assert.ok(second && second !== first, 'a new connection');
});

test('an error reply fails only that read; a refused connection name is ignored; nothing listening fails the read at once', async () => {
  const { redis, server } = fixture;
  const notAStream = uniquePrefix('string');
  await redis.set(notAStream, 'x');
  const reader = track(new DirectStreamReader(new Redis(server.url, { lazyConnect: true }).options));
  await assert.rejects(reader.read(notAStream, '0-0', 10), /WRONGTYPE/);
  assert.deepEqual(await reader.read(uniquePrefix('empty'), '0-0', 10), []);
  const oddName = track(
    new DirectStreamReader(
      new Redis(server.url, { lazyConnect: true, connectionName: 'has a space' }).options,
    ),
  );
  assert.deepEqual(await oddName.read(uniquePrefix('empty'), '0-0', 10), [], 'a refused name is not fatal');
  const nobody = track(
    new DirectStreamReader(new Redis(`redis://127.0.0.1:${await freePort()}`, { lazyConnect: true }).options),
  );
  await assert.rejects(nobody.read('s', '0-0', 10), /ECONNREFUSED/);
  const closed = new DirectStreamReader(new Redis(server.url, { lazyConnect: true }).options);
  closed.close();
  await assert.rejects(closed.read('s', '0-0', 10), /closed/);
  const closedWhileConnecting = new DirectStreamReader(
    new Redis(server.url, { lazyConnect: true, connectionName: 'closing' }).options,
  );
  const reading = closedWhileConnecting.read('s', '0-0', 10);
  closedWhileConnecting.close();
  await assert.rejects(reading, /closed/);
  assert.doesNotMatch((await redis.call('CLIENT', 'LIST')) as string, /name=closing:events /);
});

test('every reader runs a script with thousands of arguments in several lists, load it again after SCRIPT FLUSH, and pass errors on', async () => {
  const { redis, server } = fixture;
  // Adds every argument after the first to the set named by the key, and answers the set's size.
  const script = luaScript(`
    for i = 2, #ARGV, 1000 do redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV))) end
    if ARGV[1] == 'fail' then return redis.error_reply('ERR asked to fail') end
    return redis.call('SCARD', KEYS[1])`);
  const members = Array.from({ length: 20_000 }, (_, i) => `m${i} é`);
  const readers: [string, EventStreamReader][] = [
    ['direct', track(new DirectStreamReader(new Redis(server.url, { lazyConnect: true }).options))],
    ['lua', new LuaStreamReader(redis)],
    ['ioredis', new IoredisStreamReader(redis)],
  ];
  for (const [name, reader] of readers) {
    const key = uniquePrefix(name);
    await redis.script('FLUSH');
    // Arguments in several lists arrive as one list, in order.
    const lists = [['ok'], members.slice(0, 7000), [], members.slice(7000)];
    assert.equal(await reader.evalScript(script, [key], ...lists), '20000', `${name}: loaded`);
    assert.equal(await reader.evalScript(script, [key], ['ok', 'one more']), '20001', `${name}: by SHA1`);
    assert.equal(await redis.sismember(key, 'm19999 é'), 1, `${name}: arguments arrive whole`);
    await assert.rejects(reader.evalScript(script, [key], ['fail']), /asked to fail/, name);
    await redis.script('FLUSH');
    assert.equal(await reader.evalScript(script, [key], ['ok']), '20001', `${name}: loaded again`);
    reader.cancelRead();
  }
  const direct = readers[0]![1];
  const key = uniquePrefix('not-cancelled');
  const running = direct.evalScript(script, [key], ['ok', 'a']);
  direct.cancelRead();
  assert.equal(await running, '1', 'cancelRead leaves a script in progress alone');
  const stream = uniquePrefix('cancelled');
  await redis.xadd(stream, '*', 'event', 'waiting', 'jobId', 'a');
  const reading = direct.read(stream, '0-0', 10);
  direct.cancelRead();
  await assert.rejects(reading, /cancelled/);
  assert.equal((await direct.read(stream, '0-0', 10)).length, 1, 'the next read connects again');
});

test("a turn's reads: every reader answers the same events, stream info and roles, and a missing stream as an error", async () => {
  const { redis, server } = fixture;
  const stream = uniquePrefix('batch');
  const rolesKey = uniquePrefix('roles');
  const ids: string[] = [];
  for (const jobId of ['a', 'b', 'ü'])
    ids.push((await redis.xadd(stream, '*', 'event', 'waiting', 'jobId', jobId, 'prev', 'added'))!);
  await redis.zadd(rolesKey, 1700000000000, 'default', 1700000000005, 'rôle');
  const readers: [string, EventStreamReader][] = [
    ['direct', track(new DirectStreamReader(new Redis(server.url, { lazyConnect: true }).options))],
    ['lua', new LuaStreamReader(redis)],
    ['ioredis', new IoredisStreamReader(redis)],
  ];
  const answers = [];
  for (const [name, reader] of readers) {
    const batch = await reader.readBatch(stream, ids[0]!, 1, rolesKey);
    assert.deepEqual(batch.events, await reader.read(stream, ids[0]!, 1), `${name}: the same events as read`);
    assert.deepEqual(
      batch.events.map((e) => e.jobId),
      ['b'],
      name,
    );
    assert.ok(Array.isArray(batch.streamInfo), `${name}: stream info`);
    const info = batch.streamInfo;
    const field = (n: string) => info[info.indexOf(n) + 1];
    assert.equal(field('length'), 3, name);
    assert.equal(field('entries-added'), 3, name);
    assert.equal((field('first-entry') as unknown[])[0], ids[0], name);
    assert.deepEqual(batch.roles, ['default', '1700000000000', 'rôle', '1700000000005'], name);
    const gone = await reader.readBatch(uniquePrefix('missing'), '0-0', 10, uniquePrefix('no-roles'));
    assert.deepEqual(gone.events, [], name);
    assert.ok(gone.streamInfo instanceof Error && /no such key/i.test(gone.streamInfo.message), name);
    assert.deepEqual(gone.roles, [], name);
    const notAStream = uniquePrefix('string');
    await redis.set(notAStream, 'x');
    await assert.rejects(reader.readBatch(notAStream, '0-0', 10, rolesKey), /WRONGTYPE/, name);
    await redis.set(rolesKey.concat(':string'), 'x');
    await assert.rejects(reader.readBatch(stream, '0-0', 10, rolesKey.concat(':string')), /WRONGTYPE/, name);
    assert.equal(
      (await reader.readBatch(stream, '0-0', 10, rolesKey)).events.length,
      3,
      `${name}: in step after errors`,
    );
    answers.push({ ...batch, streamInfo: info });
  }
  assert.deepEqual(answers[0], answers[1], 'the Lua reader answers as the direct one');
  assert.deepEqual(answers[0], answers[2], 'the ioredis reader answers as the direct one');
});

test('Redis Cluster, Sentinel and key-prefixed connections get the Lua reader', () => {
  const { server, redis } = fixture;
  const standalone = new Redis(server.url, { lazyConnect: true });
  assert.ok(createEventStreamReader(standalone, redis) instanceof DirectStreamReader);
  assert.ok(createEventStreamReader(standalone, redis, 'ioredis') instanceof IoredisStreamReader);
  const cluster = new Cluster([{ host: '127.0.0.1', port: server.port }], { lazyConnect: true });
  assert.ok(createEventStreamReader(cluster as unknown as Redis, redis) instanceof LuaStreamReader);
  const prefixed = new Redis(server.url, { lazyConnect: true, keyPrefix: 'x:' });
  assert.ok(createEventStreamReader(prefixed, redis) instanceof LuaStreamReader);
  const sentinel = new Redis({ lazyConnect: true, sentinels: [{ host: '127.0.0.1', port: 1 }], name: 'm' });
  assert.ok(createEventStreamReader(sentinel, redis) instanceof LuaStreamReader);
  for (const c of [standalone, prefixed, sentinel]) c.disconnect();
  cluster.disconnect();
});

test('the exporter keeps exact counts on a password-protected database while its reader is killed', async () => {
  const { redis, server } = fixture;
  await redis.config('SET', 'requirepass', 'exporter-pw');
  const { connection, prefix, exporter, add, available, close } = await exporterWithQueue(
    `redis://:exporter-pw@127.0.0.1:${server.port}/5`,
    'exp-test',
  );
  try {
    await add(30);
    await exporter.waitUntilCaughtUp();
    const list = (await redis.call('CLIENT', 'LIST')) as string;
    const readerId = /id=(\d+) .*name=exp-test:events /.exec(list)?.[1];
    assert.ok(readerId, 'the exporter reads through its own named connection');
    await redis.call('CLIENT', 'KILL', 'ID', readerId);
    await add(20);
    await exporter.waitUntilCaughtUp();
    const samples = await clusterSamples(connection, prefix, registry);
    assert.equal(metricValue(samples, 'jobbers_job_transitions_total', { task, transition: 'created' }), 50);
    assert.equal(await available(), 50);
    assert.equal(await redis.exists(`${prefix}:q:events`), 0, 'nothing was written to database 0');
  } finally {
    await close();
    await redis.config('SET', 'requirepass', '');
  }
});

test("over TLS the direct reader verifies the server with the connection's TLS options", async () => {
  const server = await startTlsRedisServer();
  const { ca, url } = server;
  const admin = new Redis(url, { tls: { ca } });
  try {
    await admin.xadd('tls-stream', '*', 'event', 'waiting', 'jobId', 'over-tls');
    const trusted = track(new DirectStreamReader(new Redis(url, { tls: { ca }, lazyConnect: true }).options));
    assert.deepEqual(
      (await trusted.read('tls-stream', '0-0', 10)).map((e) => e.jobId),
      ['over-tls'],
    );
    const untrusted = track(new DirectStreamReader(new Redis(url, { lazyConnect: true }).options));
    await assert.rejects(untrusted.read('tls-stream', '0-0', 10), /self[- ]signed|certificate/i);
  } finally {
    admin.disconnect();
    await server.stop();
  }
});

test('after a Redis restart the exporter reads again and recounts what the restart lost', async () => {
  const first = await startRedisServer();
  const { connection, exporter, add, available, close } = await exporterWithQueue(first.url, 'restart-test');
  let second: RedisServer | undefined;
  try {
    await add(20);
    await exporter.waitUntilCaughtUp();
    await first.stop();
    second = await startRedisServer([], first.port);
    await waitFor(async () => (await connection.ping().catch(() => '')) === 'PONG', { what: 'reconnection' });
    await add(7);
    await waitFor(async () => (await available()) === 7, {
      what: 'the gauge to show the 7 jobs the restarted Redis holds',
      timeoutMs: 15_000,
    });
    await exporter.waitUntilCaughtUp();
  } finally {
    await close();
    await second?.stop();
  }
});
