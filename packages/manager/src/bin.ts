#!/usr/bin/env node
// jobbers-manager: the REST API, /metrics and the lifecycle exporter.
import {
  createLogger,
  createRedisConnection,
  envWithFlags,
  type FlagVariable,
  isJobbersError,
  LifecycleExporter,
  loadManagerConfig,
  loadTasks,
  logConnectionOutages,
  parseRoles,
  readAvailableByTask,
  renderClusterMetrics,
  requireSupportedRedis,
  sharedFlags,
  sharedFlagVariables,
  startTracing,
} from '@jobbers/core';
import { Command } from 'commander';

// Each flag overrides the variable named with it; the defaults shown are the variables' defaults.
// CLI durations take units (30s, 500ms); the variables hold milliseconds.
const flagVariables = {
  ...sharedFlagVariables,
  host: 'MANAGER_HOST',
  port: 'MANAGER_PORT',
  bodyLimit: 'MANAGER_BODY_LIMIT_BYTES',
  exporter: 'JOBBERS_EXPORTER',
  exporterLease: { variable: 'JOBBERS_EXPORTER_LEASE_MS', duration: true },
} satisfies Record<string, FlagVariable>;

const program = new Command('jobbers-manager');
for (const { spec, help } of sharedFlags) program.option(spec, help);
program
  .description(
    'Run the Jobbers manager: REST API, OpenAPI docs at /docs, metrics at /metrics.\n' +
      'API keys are read from JOBBERS_API_KEYS only (a flag would show them in the process list).',
  )
  .option('--host <host>', 'listen address (MANAGER_HOST; default 0.0.0.0)')
  .option('--port <port>', 'listen port (MANAGER_PORT; default 8080)')
  .option('--body-limit <bytes>', 'larger request bodies get 413 (MANAGER_BODY_LIMIT_BYTES; default 1048576)')
  .option('--exporter <on|off>', 'off: never lead the lifecycle exporter (JOBBERS_EXPORTER; default on)')
  .option(
    '--exporter-lease <duration>',
    "how long this manager's lead of a queue's exporter lasts unless renewed, e.g. 10s (JOBBERS_EXPORTER_LEASE_MS; default 10s)",
  )
  .parse();

// Flags apply before the logger is made (--log-level); a bad one is reported by main, as plain text.
let flagError: unknown;
try {
  Object.assign(process.env, envWithFlags(program.opts(), flagVariables, {}));
} catch (error) {
  flagError = error;
}
const logger = createLogger('jobbers-manager');
/** How long a stop may take before the manager exits without finishing it. */
const stopTimeoutMs = 5000;

async function main() {
  if (flagError) throw flagError;
  const config = loadManagerConfig(process.env);
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
        queues: registry.storageQueues(),
        queueLabel: (queue) => registry.queueOf(queue),
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
    exporter,
    clusterMetrics: () =>
      renderClusterMetrics({
        redis: connection,
        prefix: config.prefix,
        registry,
        partitionLabel: config.metricsPartitionLabel,
      }),
    availableByTask: (queue) => readAvailableByTask(connection, config.prefix, queue),
  });
  await app.listen({ host: config.host, port: config.port });
  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'manager stopping');
    // With Redis gone, the exporter's last commit and the connection's QUIT wait for a Redis that
    // may never answer: the manager then exits without them (the next leader replays the stream).
    setTimeout(() => {
      logger.warn(
        { signal, waitedMs: stopTimeoutMs },
        'manager stop did not finish (Redis unreachable?): exiting',
      );
      process.exit(1);
    }, stopTimeoutMs).unref();
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
  // A configuration problem is for a person at a terminal: plain text, one problem a line.
  if (isJobbersError(error)) process.stderr.write(`jobbers-manager: ${error.message}\n`);
  else logger.error({ err: error }, 'manager failed to start');
  process.exit(1);
});
