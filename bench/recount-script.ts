// The recount's counting script alone on a backlog: where Redis's time per job goes. Starts a
// private redis-server, enqueues --jobs waiting tasks of three types once (addBulk), then counts the
// backlog with each given chunk script in interleaved rounds, slices sent in pairs as the exporter
// sends them, and prints per run redis-server's CPU per job and INFO commandstats (the commands the
// script called, their share of the time). The recount's keys are cleared between runs; BullMQ's
// are only read.
//
//   node --import tsx bench/recount-script.ts [--jobs N] [--rounds N] [--slice N] [script.lua ...]
//
// Without a script path it measures packages/core/src/bullmq/lua/recount-chunk.lua. Other paths let
// a variant of it be measured against the same backlog in the same run; bench/lua/recount-floor.lua
// is the floor under any such script (it reads what the script reads and writes nothing).
import { readFileSync } from 'node:fs';
import { jobHashField } from '@jobbers/core';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedisServer } from '../test/support/redis-server.js';
import { describeLoad } from './environment.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const at = args.indexOf(`--${name}`);
  if (at === -1) return fallback;
  const value = Number(args.splice(at, 2)[1]);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} takes a positive integer`);
  return value;
};
const jobs = flag('jobs', 1_000_000);
const rounds = flag('rounds', 2);
const slice = flag('slice', 5000);
const files = args.length > 0 ? args : ['packages/core/src/bullmq/lua/recount-chunk.lua'];

const prefix = 'benchrecount';
const qp = `${prefix}:default:`;
const rp = `${qp}jobbers:recount:`;
const progress = `${rp}progress`;
const lock = `${qp}jobbers:exporter:leader`;
const token = 'bench';
// Starts the recount over (clearing its keys), as the exporter does.
const begin = readFileSync('packages/core/src/lua/recount-begin.lua', 'utf8');

async function cpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const read = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return read('used_cpu_user') + read('used_cpu_sys');
}

async function enqueue(redis: Redis) {
  const types = ['example.echo', 'example.sleep', 'example.flaky'];
  const connection = redis.duplicate();
  const queue = new Queue('default', { connection, prefix });
  for (let start = 0; start < jobs; start += 10_000) {
    const n = Math.min(10_000, jobs - start);
    await queue.addBulk(
      Array.from({ length: n }, (_, i) => ({ name: types[(start + i) % 3]!, data: { params: {} } })),
    );
  }
  await queue.close();
  connection.disconnect();
}

async function countOnce(redis: Redis, sha: string): Promise<string> {
  await redis.set(lock, token);
  await redis.eval(begin, 2, progress, lock, token, rp, '0-0', 0, '1');
  await redis.config('RESETSTAT');
  const before = await cpuSeconds(redis);
  const startedAt = performance.now();
  const chunk = () =>
    redis.evalsha(
      sha,
      3,
      progress,
      lock,
      `${qp}events`,
      token,
      qp,
      rp,
      slice,
      60_000,
      jobHashField.rateLimitedUntil,
    );
  for (;;) {
    const replies = (await Promise.all([chunk(), chunk()])) as unknown[][];
    if (replies.some((reply) => reply[1] === 1)) break;
  }
  const seconds = (performance.now() - startedAt) / 1000;
  const cpu = (await cpuSeconds(redis)) - before;
  const stats = [...(await redis.info('commandstats')).matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+)/g)]
    .filter(([, name]) => name !== 'config' && name !== 'info')
    .map(([, name, calls, usec]) => `${name} ${calls} calls ${(Number(usec) / jobs).toFixed(2)} us/job`);
  return `${seconds.toFixed(2)} s, redis-server CPU ${cpu.toFixed(2)} s = ${((cpu * 1e6) / jobs).toFixed(2)} us/job; ${stats.join(', ')}`;
}

const server = await startRedisServer(['--save', '', '--appendonly', 'no']);
const redis = new Redis(server.url, { maxRetriesPerRequest: null });
try {
  await enqueue(redis);
  const shas = await Promise.all(
    files.map(async (file) => (await redis.script('LOAD', readFileSync(file, 'utf8'))) as string),
  );
  for (let round = 1; round <= rounds; round++) {
    for (const [i, file] of files.entries()) {
      const line = await countOnce(redis, shas[i]!);
      process.stdout.write(`round ${round} ${file}: ${line}; ${describeLoad()}\n`);
    }
  }
} finally {
  redis.disconnect();
  await server.stop();
}
