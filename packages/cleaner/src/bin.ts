#!/usr/bin/env node
// jobbers-cleaner: prunes task state; cron friendly. Exit 0 done, 1 runtime error, 2 bad usage.
import {
  createRedisConnection,
  isJobbersError,
  isRedisUnavailableError,
  loadTasks,
  type MetricsFlushLogger,
  type TaskRegistry,
  waitForRedis,
} from '@jobbers/core';
import { Command, CommanderError } from 'commander';
import { type CleanerProgress, CleanerRunError, runCleaner } from './cleaner.js';
import {
  type CleanerFlags,
  type CleanerOptions,
  checkAgainstRegistry,
  cleanerStates,
  collectList,
  defaultStates,
  parseCleanerOptions,
  UsageError,
} from './options.js';
import { selectQueues } from './queues.js';
import { type CleanerReport, formatSummary } from './report.js';

const exitCodes = { ok: 0, runtime: 1, usage: 2 } as const;
const redisWaitMs = 5000;
/**
 * The cleaner's commands carry batches and nobody waits on its answers, so a slow reply on a busy
 * host must not fail a run: it waits at least this long, or JOBBERS_REDIS_COMMAND_TIMEOUT_MS if longer.
 */
const minCommandTimeoutMs = 30_000;

function parseFlags(argv: string[]): CleanerFlags {
  const program = new Command('jobbers-cleaner')
    .description(
      'Prune Jobbers task state by queue, task type, state and submission time. Safe to run from cron ' +
        'and twice at once; never removes active tasks. Env: REDIS_URL, JOBBERS_PREFIX, JOBBERS_TASKS, ' +
        'JOBBERS_METRICS_FLUSH_MS, JOBBERS_REDIS_COMMAND_TIMEOUT_MS.',
    )
    .option('--queue <queue>', 'only this queue (repeatable; default: every queue)', collectList)
    .option('--task <task>', 'only this task type (repeatable)', collectList)
    .option(
      '--state <state>',
      `${cleanerStates.join(' | ')} (repeatable; default: ${defaultStates.join(' and ')})`,
      collectList,
    )
    .option('--before <iso>', 'only tasks submitted before this ISO 8601 time')
    .option('--older-than <duration>', 'only tasks submitted longer ago than this, e.g. 30s, 15m, 7d')
    .option('--dry-run', 'report what would be removed, remove nothing')
    .option('--limit <n>', 'remove at most this many tasks')
    .option('--json', 'print one JSON summary on stdout')
    .option('--tasks <module>', 'task module (JOBBERS_TASKS): checks --task and --queue, names the queues')
    .exitOverride()
    .parse(argv);
  return program.opts<CleanerFlags>();
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

function fail(message: string, code: number): never {
  process.stderr.write(`jobbers-cleaner: ${message}\n`);
  process.exit(code);
}

async function loadRegistry(options: CleanerOptions): Promise<TaskRegistry | undefined> {
  if (!options.tasksModule) return undefined;
  const registry = await loadTasks(options.tasksModule);
  checkAgainstRegistry(options, registry);
  return registry;
}

/** A one-line progress display on a terminal; silent when stderr is a pipe or a file (cron, CI). */
function progressPrinter(): { update(p: CleanerProgress): void; done(): void } {
  if (!process.stderr.isTTY) return { update: () => {}, done: () => {} };
  let lastMs = 0;
  let shown = false;
  return {
    update: (p) => {
      const now = Date.now();
      if (now - lastMs < 200) return;
      lastMs = now;
      shown = true;
      process.stderr.write(
        `\r\x1b[2K${p.queue} ${p.state}: scanned ${p.scanned}, matched ${p.matched}, removed ${p.removed}`,
      );
    },
    done: () => {
      if (shown) process.stderr.write('\r\x1b[2K');
    },
  };
}

/** The metrics buffer's failure streak and recovery, as lines on stderr (stdout keeps the report). */
const stderrLogger: MetricsFlushLogger = {
  warn: ({ err }, message) =>
    process.stderr.write(`jobbers-cleaner: ${message}: ${(err as Error)?.message ?? err}\n`),
  info: ({ failedForMs }, message) =>
    process.stderr.write(`jobbers-cleaner: ${message} after ${failedForMs} ms\n`),
};

function print(report: CleanerReport, options: CleanerOptions): void {
  process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatSummary(report));
}

async function main(): Promise<number> {
  let options: CleanerOptions;
  let registry: TaskRegistry | undefined;
  try {
    options = parseCleanerOptions(parseFlags(process.argv));
    registry = await loadRegistry(options);
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? exitCodes.ok : exitCodes.usage;
    }
    if (error instanceof UsageError || isJobbersError(error)) fail(error.message, exitCodes.usage);
    throw error;
  }

  const redis = createRedisConnection(options.redisUrl, {
    connectionName: 'jobbers-cleaner',
    commandTimeoutMs: Math.max(options.redisCommandTimeoutMs, minCommandTimeoutMs),
  });
  let connectionError: string | undefined;
  redis.on('error', (error) => {
    connectionError = error.message;
  });
  try {
    await waitForRedis(redis, redisWaitMs);
  } catch (error) {
    redis.disconnect();
    const why = connectionError
      ? `${connectionError} (for ${redisWaitMs / 1000} s)`
      : (error as Error).message;
    fail(`cannot reach Redis at ${redactUrl(options.redisUrl)}: ${why}`, exitCodes.runtime);
  }

  const abort = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => abort.abort());
  const progress = progressPrinter();
  try {
    const queues = await selectQueues(options, redis, registry);
    const report = await runCleaner(options, {
      redis,
      queues,
      signal: abort.signal,
      onProgress: progress.update,
      logger: stderrLogger,
    });
    progress.done();
    print(report, options);
    return report.interrupted ? exitCodes.runtime : exitCodes.ok;
  } catch (error) {
    progress.done();
    if (error instanceof CleanerRunError) print(error.report, options);
    const cause = error instanceof CleanerRunError ? error.cause : error;
    const message = isRedisUnavailableError(cause)
      ? `lost Redis at ${redactUrl(options.redisUrl)}: ${(cause as Error).message}`
      : `failed: ${(cause as Error).message}`;
    process.stderr.write(`jobbers-cleaner: ${message}\n`);
    return exitCodes.runtime;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

main().then(
  (code) => process.exit(code),
  (error) => fail(`unexpected error: ${(error as Error).stack ?? error}`, exitCodes.runtime),
);
