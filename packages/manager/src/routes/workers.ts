// GET /v1/workers: every live worker, from the registry workers keep in Redis.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { listWorkers, WorkerList } from '@jobbers/core';
import type { Redis } from 'ioredis';
import { errorResponses } from '../schemas.js';

export interface WorkerRoutesOptions {
  connection: Redis;
  /** The Redis key prefix (Fastify's own `prefix` option is the route prefix). */
  keyPrefix: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

export const workerRoutes: FastifyPluginAsyncTypebox<WorkerRoutesOptions> = async (app, options) => {
  app.get(
    '/workers',
    {
      schema: {
        operationId: 'listWorkers',
        summary: 'Live workers: role, host, pid, queues, concurrency and the tasks each runs now',
        tags: ['workers'],
        response: { 200: WorkerList, ...errorResponses(503) },
      },
    },
    async () => {
      const workers = await listWorkers(options.connection, options.keyPrefix);
      return {
        workers: workers.map((w) => ({
          ...w,
          startedAt: iso(w.startedAt),
          lastSeenAt: iso(w.lastSeenAt),
          running: w.running.map((r) => ({ ...r, startedAt: iso(r.startedAt) })),
        })),
      };
    },
  );
};
