// An in-process manager on a free port, for API tests over real HTTP.
import {
  createRedisConnection,
  LifecycleExporter,
  loadTasks,
  readAvailableByTask,
  renderClusterMetrics,
} from '@jobbers/core';
import { buildManagerApp, type ManagerAppOptions } from '@jobbers/manager';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { requestJson } from './http.js';

export interface TestManager {
  baseUrl: string;
  connection: Redis;
  /** Present when started with `exporter: true`, as jobbers-manager runs it. */
  exporter?: LifecycleExporter;
  /** What the app logged at warn or above (unhandled errors with their stack), for failure messages. */
  logged: string[];
  request(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startTestManager(options: {
  redisUrl: string;
  prefix: string;
  apiKeys?: string[];
  bodyLimitBytes?: number;
  /** Run the lifecycle exporter and serve cluster metrics, as jobbers-manager does. */
  exporter?: boolean;
  /** The tasks module, as JOBBERS_TASKS names it. @default '@jobbers/examples' */
  tasks?: string;
  /** Roles the exporter may name in the role label. @default ['default'] */
  roles?: string[];
  extra?: Partial<ManagerAppOptions>;
}): Promise<TestManager> {
  const registry = await loadTasks(options.tasks ?? '@jobbers/examples');
  const connection = createRedisConnection(options.redisUrl);
  connection.on('error', () => {});
  const exporter = options.exporter
    ? new LifecycleExporter({
        connection,
        prefix: options.prefix,
        queues: registry.storageQueues(),
        queueLabel: (queue) => registry.queueOf(queue),
        roles: options.roles ?? ['default'],
        blockMs: 100,
        leaseMs: 3000,
      }).start()
    : undefined;
  const cluster = options.exporter
    ? {
        clusterMetrics: () => renderClusterMetrics({ redis: connection, prefix: options.prefix, registry }),
        availableByTask: (queue: string) => readAvailableByTask(connection, options.prefix, queue),
      }
    : {};
  const logged: string[] = [];
  const logger = pino(
    { level: 'warn' },
    {
      write: (line: string) => {
        logged.push(line);
        // Unhandled errors also go to the test output, where a CI log keeps them.
        if (/"level":(5|6)0/.test(line)) process.stderr.write(line);
      },
    },
  );
  const { app } = await buildManagerApp({
    config: {
      prefix: options.prefix,
      apiKeys: options.apiKeys ?? [],
      bodyLimitBytes: options.bodyLimitBytes ?? 1024 * 1024,
    },
    registry,
    connection,
    logger,
    ...cluster,
    ...options.extra,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address() as { port: number };
  const baseUrl = `http://127.0.0.1:${address.port}`;
  return {
    baseUrl,
    connection,
    exporter,
    logged,
    request: (method, path, body, headers) => requestJson(baseUrl, method, path, body, headers),
    close: async () => {
      await app.close();
      await exporter?.stop();
      connection.disconnect();
    },
  };
}
