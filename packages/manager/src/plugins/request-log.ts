// One log line per request, written when the response is sent. Probes and scrapes (/healthz,
// /readyz, /metrics) go at debug so that the info log holds what users asked of the API.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

const quietRoutes = new Set(['/healthz', '/readyz', '/metrics']);

export default fp(async function requestLogPlugin(app: FastifyInstance) {
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url;
    const level = route && quietRoutes.has(route) ? 'debug' : 'info';
    request.log[level](
      {
        method: request.method,
        url: request.url,
        route,
        statusCode: reply.statusCode,
        durationMs: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request',
    );
  });
});
