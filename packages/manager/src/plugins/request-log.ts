// One log line per request, written when the response is sent, in place of Fastify's two.
// Probes and scrapes (/healthz, /readyz, /metrics) go at debug, so that the info log holds what
// users asked of the API.
import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';

const quietRoutes = new Set(['/healthz', '/readyz', '/metrics']);

export class RequestLogController extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    const route = request.routeOptions?.url;
    const line = {
      method: request.method,
      url: request.url,
      route,
      statusCode: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
    };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log[route && quietRoutes.has(route) ? 'debug' : 'info'](line, 'request');
  }
}
