// GET /v1/stats: the console's numbers, from the cluster-wide metrics and their minute history.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  readStatsHistory,
  readStatsSnapshot,
  recordStatsMinute,
  StatsView,
  summarizeStats,
  type TaskRegistry,
} from '@jobbers/core';
import type { Redis } from 'ioredis';
import { errorResponses } from '../schemas.js';

export interface StatsRoutesOptions {
  connection: Redis;
  /** The Redis key prefix (Fastify's own `prefix` option is the route prefix). */
  keyPrefix: string;
  registry: TaskRegistry;
  /** How often this manager checks whether the current minute's snapshot is recorded; 0: never. @default 10000 */
  recordEveryMs?: number;
}

export const statsRoutes: FastifyPluginAsyncTypebox<StatsRoutesOptions> = async (app, options) => {
  const { connection, keyPrefix: prefix, registry } = options;
  const everyMs = options.recordEveryMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  const record = () =>
    recordStatsMinute(connection, prefix, registry).catch((error) =>
      app.log.warn({ err: error }, 'could not record the minute snapshot of the stats; trying again'),
    );
  if (everyMs > 0) {
    app.addHook('onReady', async () => {
      void record();
      timer = setInterval(record, everyMs);
      timer.unref();
    });
    app.addHook('onClose', async () => clearInterval(timer));
  }

  app.get(
    '/stats',
    {
      schema: {
        operationId: 'getStats',
        summary:
          "Per queue and task type: gauges now, the last 5 minutes' rates and quantiles, the last hour per minute",
        tags: ['stats'],
        response: { 200: StatsView, ...errorResponses(503) },
      },
    },
    async () => {
      const [now, history] = await Promise.all([
        readStatsSnapshot(connection, prefix, registry),
        readStatsHistory(connection, prefix),
      ]);
      return summarizeStats(now, history, registry);
    },
  );
};
