import type { FastifyPluginAsync } from 'fastify';
import type { Redis } from 'ioredis';
import { errorBody } from '../plugins/errors.js';

export const healthRoutes: FastifyPluginAsync<{ connection: Redis }> = async (app, { connection }) => {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    try {
      await connection.ping();
      return { status: 'ready', redis: 'up' };
    } catch (error) {
      return reply
        .code(503)
        .send(errorBody('REDIS_UNAVAILABLE', 'Redis is not reachable', { reason: (error as Error).message }));
    }
  });
};
