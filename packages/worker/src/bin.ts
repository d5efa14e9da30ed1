#!/usr/bin/env node
// jobbers-worker: runs the tasks of one role's queues, or with --processes N supervises N workers.
import { fileURLToPath } from 'node:url';
import {
  createLogger,
  isJobbersError,
  type Logger,
  loadTasks,
  loadWorkerConfig,
  parseRoles,
  queuesForRole,
  sharedFlags,
  startTracing,
} from '@jobbers/core';
import { Command } from 'commander';
import { parseProcesses, type WorkerFlags, workerEnv } from './flags.js';
import { startHealthServer } from './process-metrics.js';
import { WorkerSupervisor } from './supervisor.js';
import { JobbersWorker } from './worker.js';

const program = new Command('jobbers-worker');
for (const { spec, help } of sharedFlags) program.option(spec, help);
program
  .description('Run Jobbers tasks from the queues of one worker role.')
  .option('--role <role>', 'worker role (WORKER_ROLE; default default)')
  .option(
    '--concurrency <n>',
    'tasks run at once, across all queues of the role (WORKER_CONCURRENT_TASKS; default 10)',
  )
  .option('--ttl <n>', 'exit cleanly after taking this many tasks, 0 = never (WORKER_TTL; default 0)')
  .option(
    '--metrics-port <port>',
    'health and metrics port, 0 = any free port (WORKER_METRICS_PORT; default 9464)',
  )
  .option(
    '--queue-capacity <spec>',
    'per-queue limits, e.g. default=8,images=2 (WORKER_QUEUE_CAPACITY; default none)',
  )
  .option(
    '--shutdown-grace <duration>',
    'how long SIGTERM lets `finish` tasks run, e.g. 30s (WORKER_SHUTDOWN_GRACE_MS; default 30s)',
  )
  .option(
    '--lease <duration>',
    'task lease; a task not renewed for this long runs elsewhere (WORKER_LEASE_MS; default 30s)',
  )
  .option(
    '--metrics-flush <duration>',
    'how often counts are flushed to Redis (JOBBERS_METRICS_FLUSH_MS; default 1s)',
  )
  .option('--processes <n>', 'run and supervise N worker processes, replacing any that recycle or die')
  .parse();

const logLevel = program.opts<WorkerFlags>().logLevel;
if (logLevel !== undefined) process.env.LOG_LEVEL = logLevel;
const logger = createLogger('jobbers-worker');

async function runWorker(env: NodeJS.ProcessEnv, log: Logger): Promise<void> {
  // Signals are handled from the first moment: one that comes while starting stops the worker
  // before it takes any task, instead of killing the process.
  let worker: JobbersWorker | undefined;
  let signalled = false;
  const onSignal = (signal: string) => {
    signalled = true;
    log.info({ signal, runningTasks: worker?.runningTasks ?? 0 }, 'stopping: applying shutdown policies');
    void worker?.stop();
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // Supervised: if the supervisor goes away, stop as on SIGTERM rather than run on unsupervised.
  if (process.connected) process.on('disconnect', () => onSignal('supervisor gone'));
  const config = loadWorkerConfig(env);
  const tracing = await startTracing('jobbers-worker');
  const registry = await loadTasks(config.tasksModule);
  const roles = parseRoles(config.roles, registry);
  const started = new JobbersWorker({ config, registry, roles, logger: log });
  worker = started;
  if (signalled) void started.stop();
  const health = await startHealthServer(started.metrics, config.metricsPort, () => started.isReady());
  await started.start();
  log.info({ metricsPort: health.port }, 'health and metrics listening');
  const reason = await started.stopped;
  await health.close();
  await tracing?.shutdown().catch((error) => log.warn({ err: error }, 'trace flush failed'));
  log.info({ reason }, reason === 'ttl' ? 'worker recycled: exiting' : 'worker exiting');
  process.exit(0);
}

async function runSupervisor(env: NodeJS.ProcessEnv, processes: number): Promise<void> {
  // Fail fast on what would make every child fail.
  const config = loadWorkerConfig(env);
  queuesForRole(parseRoles(config.roles, await loadTasks(config.tasksModule)), config.role);
  const supervisor = new WorkerSupervisor({
    processes,
    script: fileURLToPath(import.meta.url),
    env,
    metricsPort: config.metricsPort,
    logger: logger.child({ component: 'supervisor' }),
  });
  process.on('SIGTERM', () => supervisor.stop('SIGTERM'));
  process.on('SIGINT', () => supervisor.stop('SIGINT'));
  supervisor.start();
  const code = await supervisor.done;
  logger.info({ code }, 'all worker processes exited');
  process.exit(code);
}

async function main() {
  const flags = program.opts<WorkerFlags>();
  const env = workerEnv(flags);
  const processes = parseProcesses(flags.processes);
  if (processes === undefined) await runWorker(env, logger);
  else await runSupervisor(env, processes);
}

main().catch((error) => {
  // A configuration problem is for a person at a terminal: plain text, one problem a line.
  if (isJobbersError(error)) process.stderr.write(`jobbers-worker: ${error.message}\n`);
  else logger.error({ err: error }, 'worker failed to start');
  process.exit(1);
});
