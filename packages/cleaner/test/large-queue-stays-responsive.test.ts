// Pruning 200,000 completed tasks in bounded batches while a probe PINGs Redis every 10 ms on its own
// connection: Redis keeps answering, and the run reports its rate.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';
import { runCleanerBin } from './support/cli.js';
import { writeCompletedJobs } from './support/seed.js';

let server: RedisServer;
let redis: Redis;

before(async () => {
  server = await startRedisServer(['--slowlog-log-slower-than', '2000', '--slowlog-max-len', '1024']);
  redis = new Redis(server.url);
});

after(async () => {
  redis?.disconnect();
  await server?.stop();
});

/** PINGs every intervalMs (one at a time) and keeps each round-trip time. */
function startPingProbe(url: string, intervalMs: number) {
  const probe = new Redis(url);
  const latenciesMs: number[] = [];
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    const started = process.hrtime.bigint();
    probe.ping().then(
      () => {
        latenciesMs.push(Number(process.hrtime.bigint() - started) / 1e6);
        busy = false;
      },
      () => {
        busy = false;
      },
    );
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      probe.disconnect();
      const sorted = [...latenciesMs].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0;
      return { count: sorted.length, worstMs: sorted.at(-1) ?? 0, p99Ms: at(0.99), p50Ms: at(0.5) };
    },
  };
}

async function commandStats(): Promise<Record<string, { calls: number; usecPerCall: number }>> {
  const stats: Record<string, { calls: number; usecPerCall: number }> = {};
  for (const match of (await redis.info('commandstats')).matchAll(
    /cmdstat_(\S+):calls=(\d+),usec=\d+,usec_per_call=([\d.]+)/g,
  )) {
    stats[match[1]!] = { calls: Number(match[2]), usecPerCall: Number(match[3]) };
  }
  return stats;
}

test('200,000 completed tasks are pruned while Redis keeps answering a 10 ms PING probe', async (t) => {
  const prefix = uniquePrefix('big');
  const count = 200_000;
  const setupStarted = Date.now();
  await writeCompletedJobs(redis, prefix, 'big', { count, task: 'bulk.task', ageMs: 86_400_000 });
  assert.equal(await redis.zcard(`${prefix}:big:completed`), count);
  t.diagnostic(`setup: ${count} completed jobs written in ${Date.now() - setupStarted} ms`);
  await redis.config('RESETSTAT');
  await redis.slowlog('RESET');

  const probe = startPingProbe(server.url, 10);
  const result = await runCleanerBin(
    { redisUrl: server.url, prefix },
    ['--queue', 'big', '--state', 'completed', '--older-than', '1h', '--json'],
    { killAfterMs: 300_000 },
  );
  const ping = probe.stop();
  assert.equal(result.code, 0, result.stderr);
  const report = result.report!;

  const stats = await commandStats();
  const slowest = ((await redis.slowlog('GET', 1024)) as [number, number, number, string[]][])
    .map(([, , micros, args]) => ({ micros, command: args[0] }))
    .sort((a, b) => b.micros - a.micros)[0];
  const figures =
    `cleaner removed ${report.removed.total} jobs in ${report.durationMs} ms = ${report.jobsPerSecond} jobs/s; ` +
    `PING probe (${ping.count} pings every 10 ms): worst ${ping.worstMs.toFixed(1)} ms, ` +
    `p99 ${ping.p99Ms.toFixed(1)} ms, p50 ${ping.p50Ms.toFixed(2)} ms; ` +
    `Redis-side removeJob script: ${stats.evalsha?.usecPerCall} us/call over ${stats.evalsha?.calls} calls, ` +
    `ZRANGE page: ${stats.zrange?.usecPerCall} us/call; slowest logged command: ` +
    (slowest ? `${slowest.command} ${(slowest.micros / 1000).toFixed(1)} ms` : 'none over 2 ms');
  t.diagnostic(figures);
  console.log(`[large-queue] ${figures}`);

  assert.equal(report.removed.total, count);
  assert.equal(await redis.zcard(`${prefix}:big:completed`), 0);
  assert.equal(await redis.exists(`${prefix}:big:job-0000000`, `${prefix}:big:job-0199999`), 0);
  assert.ok(ping.count > 50, 'the probe kept getting answers during the whole prune');
  // Bounded work, checked structurally rather than by the clock: one removal per script call and
  // pages of at most 500 ids, so no single command walks the 200,000 jobs. The latencies above are
  // reported, not asserted (performance belongs in bench/).
  assert.ok(
    (stats.evalsha?.calls ?? 0) >= count / 2,
    `about one removal per call (${stats.evalsha?.calls} calls)`,
  );
  assert.ok((stats.zrange?.calls ?? 0) >= count / 500, `paged reads (${stats.zrange?.calls} ZRANGE calls)`);
});
