// Drain throughput with the console open against closed, in one run: a jobbers-manager and a
// jobbers-worker process; per run the queue is paused, N example.echo tasks are submitted over REST,
// then resumed and drained, measured from the jobs' own processedOn/finishedOn. "open" has the
// console's tasks page in chromium (it follows the whole /v1/events stream) and one
// more /v1/events subscriber reading every transition (BENCH_CONSOLE_OPEN=browser or =stream keeps
// only one of the two, to tell their costs apart). Rounds alternate the order of the two variants.
import { Redis } from 'ioredis';
import { findChromium, launchChromium } from '../test/support/browser.js';
import { uniquePrefix } from '../test/support/redis-server.js';
import { startManagerProcess, startWorkerProcess } from '../test/support/stack.js';
import { waitFor } from '../test/support/wait.js';

export type ConsoleVariant = 'closed' | 'open';

export interface ConsoleRun {
  round: number;
  variant: ConsoleVariant;
  jobs: number;
  windowMs: number;
  jobsPerSecond: number;
  /** Transitions the extra subscriber read during the run (open only). */
  eventsRead: number;
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
  const prefix = uniquePrefix('bench-console');
  const env = { REDIS_URL: options.redisUrl, JOBBERS_PREFIX: prefix, LOG_LEVEL: 'warn' };
  const manager = await startManagerProcess(env);
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
      let closeConsole = async () => {};
      if (variant === 'open') {
        const parts = (process.env.BENCH_CONSOLE_OPEN ?? 'browser,stream').split(',');
        const page = parts.includes('browser')
          ? await browser.newPage({ viewport: { width: 1280, height: 900 } })
          : undefined;
        await page?.goto(`${manager.baseUrl}/ui/#/tasks`);
        await page?.locator('[data-live="live"]').waitFor({ timeout: 20_000 });
        const controller = new AbortController();
        const response = await fetch(
          `${manager.baseUrl}/v1/events${parts.includes('stream') ? '' : '?id=nothing-matches'}`,
          { signal: controller.signal },
        );
        const reading = (async () => {
          const reader = response.body!.getReader();
          const decoder = new TextDecoder();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            eventsRead += decoder.decode(value).split('\ndata: ').length - 1;
          }
        })().catch(() => undefined);
        closeConsole = async () => {
          controller.abort();
          await reading;
          await page?.close();
        };
      }
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
      await closeConsole();
      const windowMs = Math.max(1, end - first);
      return {
        round,
        variant,
        jobs: ids.length,
        windowMs,
        jobsPerSecond: (ids.length / windowMs) * 1000,
        eventsRead,
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
          `round ${round}  console ${variant.padEnd(6)} ${Math.round(run.jobsPerSecond)} jobs/s (${run.jobs} jobs in ${run.windowMs} ms${variant === 'open' ? `; the extra subscriber read ${run.eventsRead} transitions` : ''})`,
        );
      }
    }
  } finally {
    await browser.close();
    await worker.stop();
    await manager.stop();
    redis.disconnect();
  }
  return runs;
}
