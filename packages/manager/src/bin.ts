#!/usr/bin/env node
// jobbers-manager: the REST API, /metrics and the lifecycle exporter.
import {
  createLogger,
  createRedisConnection,
  isJobbersError,
  LifecycleExporter,
  loadManagerConfig,
  loadTasks,
  logConnectionOutages,
  parseRoles,
  readAvailableByTask,
  renderClusterMetrics,
  requireSupportedRedis,
  startTracing,
} from '@jobbers/core';
import { Command } from 'commander';
import { buildManagerApp } from './app.js';

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
  const connection = createRedisConnection(config.redisUrl, {
    connectionName: 'jobbers-manager',
    commandTimeoutMs: config.redisCommandTimeoutMs,
  });
  logConnectionOutages(connection, logger, 'manager');
  // Checked on every (re)connection, so a Redis replaced by an older one is refused too.
  connection.on('ready', () => {
    requireSupportedRedis(connection).catch((error) => {
      if (isJobbersError(error) && error.code === 'REDIS_VERSION_UNSUPPORTED') {
        logger.fatal(error.message);
        process.exit(1);
      }
      logger.warn({ err: error }, 'could not read the Redis version; checking again on reconnection');
    });
  });
  const roles = [...parseRoles(config.roles, registry).keys()];
  const exporter = config.runExporter
    ? new LifecycleExporter({
        connection,
        prefix: config.prefix,
        queues: registry.queues,
        roles,
        logger,
      }).start()
    : undefined;
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
    await connection.quit().catch(() => connection.disconnect());
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
