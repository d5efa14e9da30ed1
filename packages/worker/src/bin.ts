#!/usr/bin/env node
// jobbers-worker: runs the tasks of one role's queues.
import {
  createLogger,
  isJobbersError,
  loadTasks,
  loadWorkerConfig,
  parseRoles,
  startTracing,
} from '@jobbers/core';
import { Command } from 'commander';
import { startHealthServer } from './process-metrics.js';
import { JobbersWorker } from './worker.js';

const program = new Command('jobbers-worker')
  .description('Run Jobbers tasks from the queues of one worker role.')
  .option('--tasks <module>', 'module that defines the tasks (JOBBERS_TASKS)')
  .option('--role <role>', 'worker role (WORKER_ROLE)')
  .option('--concurrency <n>', 'tasks run at once (WORKER_CONCURRENT_TASKS)')
  .option('--ttl <n>', 'exit cleanly after this many tasks, 0 = never (WORKER_TTL)')
  .option('--metrics-port <port>', 'health and metrics port (WORKER_METRICS_PORT)')
  .option('--queue-capacity <spec>', 'per-queue limits, e.g. default=8,images=2 (WORKER_QUEUE_CAPACITY)')
  .option('--shutdown-grace <ms>', 'how long SIGTERM waits for running tasks (WORKER_SHUTDOWN_GRACE_MS)')
  .parse();

const flags = program.opts();
const flagEnv: Record<string, string | undefined> = {
  JOBBERS_TASKS: flags.tasks,
  WORKER_ROLE: flags.role,
  WORKER_CONCURRENT_TASKS: flags.concurrency,
  WORKER_TTL: flags.ttl,
  WORKER_METRICS_PORT: flags.metricsPort,
  WORKER_QUEUE_CAPACITY: flags.queueCapacity,
  WORKER_SHUTDOWN_GRACE_MS: flags.shutdownGrace,
};
const logger = createLogger('jobbers-worker');

async function main() {
  const env = { ...process.env };
  for (const [key, value] of Object.entries(flagEnv)) if (value !== undefined) env[key] = value;
  const config = loadWorkerConfig(env);
  const tracing = await startTracing('jobbers-worker');
  const registry = await loadTasks(config.tasksModule);
  const roles = parseRoles(config.roles, registry);
  const worker = new JobbersWorker({ config, registry, roles, logger });
  const health = await startHealthServer(worker.metrics, config.metricsPort, () => worker.isRunning);
  await worker.start();
  logger.info({ metricsPort: health.port }, 'health and metrics listening');
  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'stopping: finishing running tasks');
    await worker.stop();
    await health.close();
    await tracing?.shutdown().catch((error) => logger.warn({ err: error }, 'trace flush failed'));
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error) => {
  if (isJobbersError(error)) logger.error(error.message);
  else logger.error({ err: error }, 'worker failed to start');
  process.exit(1);
});
