#!/usr/bin/env node
// jobbers-manager: the REST API, /metrics and the lifecycle exporter.
import {
  createLogger,
  createRedisConnection,
  isJobbersError,
  LifecycleExporter,
  loadManagerConfig,
  loadTasks,
  parseRoles,
  readAvailableByTask,
  renderClusterMetrics,
  startTracing,
} from '@jobbers/core';
import { Command } from 'commander';

const program = new Command('jobbers-manager')
  .description('Run the Jobbers manager: REST API, OpenAPI docs at /docs, metrics at /metrics.')
  .option('--tasks <module>', 'module that defines the tasks (JOBBERS_TASKS)')
  .option('--host <host>', 'listen address (MANAGER_HOST)')
  .option('--port <port>', 'listen port (MANAGER_PORT)')
  .parse();

const flags = program.opts();
const logger = createLogger('jobbers-manager');

async function main() {
  const env = { ...process.env };
  if (flags.tasks) env.JOBBERS_TASKS = flags.tasks;
  if (flags.host) env.MANAGER_HOST = flags.host;
  if (flags.port) env.MANAGER_PORT = flags.port;
  const config = loadManagerConfig(env);
  const tracing = await startTracing('jobbers-manager');
  const registry = await loadTasks(config.tasksModule);
  const connection = createRedisConnection(config.redisUrl, { connectionName: 'jobbers-manager' });
  connection.on('error', (error) => logger.warn({ err: error.message }, 'redis connection error'));
  const roles = [...parseRoles(config.roles, registry).keys()];
  const exporter = config.runExporter
    ? new LifecycleExporter({
        connection,
        prefix: config.prefix,
        queues: registry.queues,
        roles,
        logger,
        leaseMs: config.exporterLeaseMs,
      }).start()
    : undefined;
  // The app's modules load while the exporter already counts: after an outage the recount of a
  // large backlog (in Redis) overlaps the manager's start-up instead of following it.
  const { buildManagerApp } = await import('./app.js');
  const { app } = await buildManagerApp({
    config,
    registry,
    connection,
    logger,
    clusterMetrics: () => renderClusterMetrics({ redis: connection, prefix: config.prefix, registry }),
    availableByTask: (queue) => readAvailableByTask(connection, config.prefix, queue),
  });
  await app.listen({ host: config.host, port: config.port });
  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'manager stopping');
    await app.close();
    await exporter?.stop();
    await connection.quit().catch(() => {});
    await tracing?.shutdown().catch((error) => logger.warn({ err: error }, 'trace flush failed'));
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error) => {
  if (isJobbersError(error)) logger.error(error.message);
  else logger.error({ err: error }, 'manager failed to start');
  process.exit(1);
});
