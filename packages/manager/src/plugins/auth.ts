// Bearer-key auth for /v1 routes when JOBBERS_API_KEYS is set.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { errorBody } from './errors.js';

function matches(candidate: string, keys: Buffer[]): boolean {
  const given = Buffer.from(candidate);
  return keys.some((key) => key.length === given.length && timingSafeEqual(key, given));
}

export default fp(async function authPlugin(app: FastifyInstance, options: { apiKeys: string[] }) {
  if (options.apiKeys.length === 0) return;
  const keys = options.apiKeys.map((k) => Buffer.from(k));
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/v1/')) return;
    const header = request.headers.authorization;
    if (!header) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send(errorBody('UNAUTHORIZED', 'missing Authorization: Bearer <key>'));
    }
    const [scheme, key] = header.split(' ');
    if (scheme?.toLowerCase() !== 'bearer' || !key || !matches(key, keys)) {
      return reply.code(403).send(errorBody('FORBIDDEN', 'API key not accepted'));
    }
  });
});
