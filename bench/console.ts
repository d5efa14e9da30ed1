// Drain throughput with the console open against closed, in one run: a jobbers-manager and a
// jobbers-worker process; per run the queue is paused, N example.echo tasks are submitted over REST,
// then resumed and drained, measured from the jobs' own processedOn/finishedOn. "open" has the
// console's tasks page in chromium (it follows the whole /v1/events stream) and one
// more /v1/events subscriber, `curl -N`, reading every transition (BENCH_CONSOLE_OPEN=browser or =stream keeps
// only one of the two, to tell their costs apart). Rounds alternate the order of the two variants.
// The clients run on their users' machines, not the server's: as the drain bench does for the
// exporter's process, chromium and curl get only CPU nothing else wants (SCHED_IDLE), unless
// BENCH_CONSOLE_CLIENTS=normal, which shows what sharing this machine's cores with them costs. The
// manager, which serves the streams, runs as usual: its cost is measured in full.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { findChromium, launchChromium } from '../test/support/browser.js';
import { uniquePrefix } from '../test/support/redis-server.js';
import { startManagerProcess, startWorkerProcess } from '../test/support/stack.js';
import { waitFor } from '../test/support/wait.js';
import { idlePriorityUnavailable, runWhenIdle } from './layout.js';

export type ConsoleVariant = 'closed' | 'open';

export interface ConsoleRun {
  round: number;
  variant: ConsoleVariant;
  jobs: number;
  windowMs: number;
  jobsPerSecond: number;
  /** Transitions the extra subscriber read during the run (open only). */
  eventsRead: number;
  /**
   * How long after the last job finished the extra subscriber had read every transition of the drain
   * (open, with the subscriber following every transition); the CPU figures include that time.
   */
  deliveredAfterMs?: number;
  /** The manager dropped the extra subscriber (more than 1 MiB unsent) before it had them all. */
  subscriberDropped?: boolean;
  /** Streams that followed every transition (open only): the page's and curl's, unless one is left out. */
  fullStreams: number;
  /** CPU time (ms) during the drain: the manager, the worker, every chromium process and redis-server. */
  cpuMs: { manager: number; worker: number; chromium: number; redis: number };
  /** The stream reads and hash reads Redis served during the drain: calls and time inside Redis (us). */
  redisReads: Record<string, { calls: number; usec: number }>;
}

/** The commands whose calls the bench reports: the event stream's reads and the jobs' hash reads. */
const readCommands = ['xread', 'xrange', 'hget'];

/** Calls and usec of readCommands so far, from INFO commandstats. */
async function readStats(redis: Redis): Promise<Record<string, { calls: number; usec: number }>> {
  const info = await redis.info('commandstats');
  const stats: Record<string, { calls: number; usec: number }> = {};
  for (const command of readCommands) {
    const line = new RegExp(`^cmdstat_${command}:calls=(\\d+),usec=(\\d+)`, 'm').exec(info);
    stats[command] = { calls: Number(line?.[1] ?? 0), usec: Number(line?.[2] ?? 0) };
  }
  return stats;
}

/** CPU time (ms) a process has used, from /proc (0 where it cannot be read). */
function cpuMsOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

/** The chromium processes this bench started: descendants of this process running chromium. */
function chromiumPids(): number[] {
  const parentOf = new Map<number, number>();
  const chromium: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const pid = Number(entry);
      parentOf.set(pid, Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]));
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').startsWith('/usr/lib/chromium/')) chromium.push(pid);
    } catch {
      // The process ended while the list was read.
    }
  }
  const ours = (pid: number): boolean => {
    for (let p = parentOf.get(pid); p !== undefined && p > 1; p = parentOf.get(p))
      if (p === process.pid) return true;
    return false;
  };
  return chromium.filter(ours);
}

/** redis-server's CPU time (ms), user and system, from INFO cpu. */
async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

/** Resolves once the bench's chromium processes used under 10 ms of CPU in 250 ms (at most 10 s). */
async function chromiumSettled(): Promise<void> {
  const used = () => chromiumPids().reduce((sum, pid) => sum + cpuMsOf(pid), 0);
  let last = used();
  for (let waited = 0; waited < 10_000; waited += 250) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = used();
    if (now - last < 10) return;
    last = now;
  }
}

async function cpuNow(managerPid: number, workerPid: number, redis: Redis) {
  const chromium = new Map(chromiumPids().map((pid) => [pid, cpuMsOf(pid)]));
  return {
    manager: cpuMsOf(managerPid),
    worker: cpuMsOf(workerPid),
    chromium,
    redis: await redisCpuMs(redis),
  };
}

export interface ConsoleBenchOptions {
  redisUrl: string;
  jobs: number;
  rounds: number;
  concurrency: number;
  print(line: string): void;
}

export async function runConsoleBench(options: ConsoleBenchOptions): Promise<ConsoleRun[] | string> {
  const chromiumPath = findChromium();
  if (!chromiumPath) return 'no chromium: the console section needs one (apt-get install -y chromium)';
  const clientsIdle = process.env.BENCH_CONSOLE_CLIENTS !== 'normal' && !idlePriorityUnavailable();
  options.print(
    clientsIdle
      ? "chromium and curl at idle priority (SCHED_IDLE): the clients are their users' machines, not the server's"
      : 'chromium and curl at normal priority, sharing the cores with the manager, the worker and redis-server',
  );
  const prefix = uniquePrefix('bench-console');
  const env = { REDIS_URL: options.redisUrl, JOBBERS_PREFIX: prefix, LOG_LEVEL: 'warn' };
  // BENCH_CONSOLE_PROFILE=<dir>: the manager writes a V8 CPU profile of the whole run there.
  const profileDir = process.env.BENCH_CONSOLE_PROFILE;
  const manager = await startManagerProcess(
    env,
    profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
  );
  if (profileDir) options.print(`the manager's CPU profile goes to ${profileDir}`);
  const worker = await startWorkerProcess({
    ...env,
    LOG_LEVEL: 'info',
    WORKER_METRICS_PORT: '0',
    WORKER_CONCURRENT_TASKS: String(options.concurrency),
  });
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  const browser = await launchChromium(chromiumPath);
  const runs: ConsoleRun[] = [];
  try {
    const drain = async (round: number, variant: ConsoleVariant): Promise<ConsoleRun> => {
      await manager.request('POST', '/v1/queues/default/pause');
      const ids: string[] = [];
      for (let done = 0; done < options.jobs; ) {
        const size = Math.min(500, options.jobs - done);
        const reply = await manager.request('POST', '/v1/tasks/batch', {
          tasks: Array.from({ length: size }, (_, n) => ({ task: 'example.echo', params: { n } })),
        });
        if (reply.status !== 201)
          throw new Error(`batch submit: ${reply.status} ${JSON.stringify(reply.body)}`);
        for (const r of reply.body.tasks) ids.push(r.id);
        done += size;
      }
      let eventsRead = 0;
      let fullStreams = 0;
      let closeConsole = async () => {};
      // The transitions the extra subscriber has read so far; undefined when it follows none.
      let readSoFar: (() => number) | undefined;
      // Set when curl's stream ended (the manager drops a subscriber that falls too far behind).
      let curlEnded = false;
      if (variant === 'open') {
        const parts = (process.env.BENCH_CONSOLE_OPEN ?? 'browser,stream').split(',');
        fullStreams = parts.filter((part) => part === 'browser' || part === 'stream').length;
        const page = parts.includes('browser')
          ? await browser.newPage({ viewport: { width: 1280, height: 900 } })
          : undefined;
        await page?.goto(`${manager.baseUrl}/ui/#/tasks`);
        await page?.locator('[data-live="live"]').waitFor({ timeout: 20_000 });
        if (clientsIdle) for (const pid of chromiumPids()) runWhenIdle(pid);
        // An open page goes on loading for a second or two after it shows `live` (100-350 ms of
        // chromium's CPU, then next to none): the drain starts once it has settled, as it would for
        // a console opened before the work it watches.
        if (page) await chromiumSettled();
        // The second subscriber is `curl -N`, as a person would follow the stream, writing to a file.
        const output = path.join(tmpdir(), `jobbers-bench-events-${process.pid}-${round}.txt`);
        const url = `${manager.baseUrl}/v1/events${parts.includes('stream') ? '' : '?id=nothing-matches'}`;
        const curl = spawn(
          clientsIdle ? 'chrt' : 'curl',
          [...(clientsIdle ? ['--idle', '0', 'curl'] : []), '-N', '-s', '-o', output, url],
          {
            stdio: 'ignore',
          },
        );
        const curlExited = new Promise((resolve) => curl.on('exit', resolve));
        curl.on('exit', () => {
          curlEnded = true;
        });
        await waitFor(() => existsSync(output) && readFileSync(output, 'utf8').includes('retry:'), {
          what: 'curl -N to receive the stream',
        });
        const countRead = () => readFileSync(output, 'utf8').split('\ndata: ').length - 1;
        if (parts.includes('stream')) readSoFar = countRead;
        closeConsole = async () => {
          curl.kill();
          await curlExited;
          eventsRead = readFileSync(output, 'utf8').split('\ndata: ').length - 1;
          rmSync(output, { force: true });
          await page?.close();
        };
      }
      const cpuBefore = await cpuNow(manager.child.pid!, worker.child.pid!, redis);
      const readsBefore = await readStats(redis);
      await manager.request('POST', '/v1/queues/default/resume');
      const last = ids[ids.length - 1]!;
      await waitFor(async () => (await redis.hget(`${prefix}:default:${last}`, 'finishedOn')) !== null, {
        timeoutMs: 600_000,
        intervalMs: 100,
        what: 'the drain to finish',
      });
      await waitFor(async () => (await redis.llen(`${prefix}:default:active`)) === 0, { timeoutMs: 60_000 });
      const read = redis.pipeline();
      for (const id of ids) read.hmget(`${prefix}:default:${id}`, 'processedOn', 'finishedOn');
      let first = Number.POSITIVE_INFINITY;
      let end = 0;
      for (const [, value] of (await read.exec()) ?? []) {
        const [processedOn, finishedOn] = value as [string | null, string | null];
        if (processedOn) first = Math.min(first, Number(processedOn));
        if (finishedOn) end = Math.max(end, Number(finishedOn));
      }
      // The CPU the streams cost is counted until the subscriber has every transition of the drain
      // (two per task: activated, completed), however far behind the drain the feed was.
      let deliveredAfterMs: number | undefined;
      let subscriberDropped = false;
      if (readSoFar) {
        const count = readSoFar;
        // A subscriber more than 1 MiB behind is dropped by the manager (curl, at idle priority,
        // may not read while the drain holds both cores): what it read until then is reported.
        await waitFor(() => curlEnded || count() >= 2 * ids.length, {
          timeoutMs: 60_000,
          intervalMs: 50,
          what: 'the extra subscriber to read every transition of the drain',
        });
        subscriberDropped = curlEnded;
        if (!curlEnded) deliveredAfterMs = Math.max(0, Date.now() - end);
      }
      const cpuAfter = await cpuNow(manager.child.pid!, worker.child.pid!, redis);
      const readsAfter = await readStats(redis);
      const redisReads: ConsoleRun['redisReads'] = {};
      for (const command of readCommands)
        redisReads[command] = {
          calls: readsAfter[command]!.calls - readsBefore[command]!.calls,
          usec: readsAfter[command]!.usec - readsBefore[command]!.usec,
        };
      let chromiumMs = 0;
      for (const [pid, ms] of cpuAfter.chromium) chromiumMs += ms - (cpuBefore.chromium.get(pid) ?? 0);
      const cpuMs = {
        manager: cpuAfter.manager - cpuBefore.manager,
        worker: cpuAfter.worker - cpuBefore.worker,
        chromium: chromiumMs,
        redis: cpuAfter.redis - cpuBefore.redis,
      };
      await closeConsole();
      const windowMs = Math.max(1, end - first);
      return {
        round,
        variant,
        jobs: ids.length,
        windowMs,
        jobsPerSecond: (ids.length / windowMs) * 1000,
        eventsRead,
        deliveredAfterMs,
        subscriberDropped,
        fullStreams,
        cpuMs,
        redisReads,
      };
    };
    await drain(0, 'closed');
    await drain(0, 'open');
    options.print('(warm-up: one closed and one open run, not counted)');
    for (let round = 1; round <= options.rounds; round++) {
      const order: ConsoleVariant[] = round % 2 === 1 ? ['closed', 'open'] : ['open', 'closed'];
      for (const variant of order) {
        const run = await drain(round, variant);
        runs.push(run);
        options.print(
          `round ${round}  console ${variant.padEnd(6)} ${Math.round(run.jobsPerSecond)} jobs/s (${run.jobs} jobs in ${run.windowMs} ms${variant === 'open' ? `; the extra subscriber read ${run.eventsRead} transitions${run.subscriberDropped ? ' (its stream ended: dropped as a slow consumer)' : ''}${run.deliveredAfterMs === undefined ? '' : `, the last ${run.deliveredAfterMs} ms after the drain`}` : ''}; cpu ms manager ${Math.round(run.cpuMs.manager)}, worker ${Math.round(run.cpuMs.worker)}, chromium ${Math.round(run.cpuMs.chromium)}, redis ${Math.round(run.cpuMs.redis)}; redis reads ${readCommands.map((c) => `${c} ${run.redisReads[c]!.calls} (${(run.redisReads[c]!.usec / 1000).toFixed(1)} ms)`).join(', ')})`,
        );
      }
    }
  } catch (error) {
    // A process that ended says why in its output.
    if (manager.child.exitCode !== null)
      options.print(`the manager exited (code ${manager.child.exitCode}): ${manager.output().slice(-4000)}`);
    if (worker.child.exitCode !== null) options.print(`the worker exited: ${worker.output().slice(-4000)}`);
    throw error;
  } finally {
    await browser.close();
    await worker.stop();
    if (profileDir) {
      // A profile is written when the process exits of itself: SIGTERM, its graceful stop.
      manager.kill('SIGTERM');
      await Promise.race([manager.exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    }
    await manager.stop();
    redis.disconnect();
  }
  return runs;
}
