// The lifecycle exporter as jobbers-manager constructs it (production defaults, roles from
// parseRoles), on a connection of its own, for every bench section that needs one.
import {
  createRedisConnection,
  LifecycleExporter,
  type LifecycleExporterOptions,
  parseRoles,
  type TaskRegistry,
  waitForRedis,
} from '@jobbers/core';
import type { Redis } from 'ioredis';

export interface ManagerExporter {
  /** The exporter's connection, shared with whatever plays the manager's other parts. */
  connection: Redis;
  exporter: LifecycleExporter;
  stop(): Promise<void>;
}

export async function startManagerExporter(
  redisUrl: string,
  prefix: string,
  registry: TaskRegistry,
  connectionName: string,
  /** Options that differ from production defaults (only where a bench needs them to). */
  overrides: Partial<LifecycleExporterOptions> = {},
): Promise<ManagerExporter> {
  const connection = createRedisConnection(redisUrl, { connectionName });
  connection.on('error', () => {});
  await waitForRedis(connection, 10_000);
  const exporter = new LifecycleExporter({
    connection,
    prefix,
    queues: registry.queues,
    roles: [...parseRoles(undefined, registry).keys()],
    ...overrides,
  }).start();
  await exporter.waitUntilReady(30_000);
  return {
    connection,
    exporter,
    stop: async () => {
      await exporter.stop();
      connection.disconnect();
    },
  };
}
