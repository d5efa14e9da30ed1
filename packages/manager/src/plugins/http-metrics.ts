// Per-process HTTP metrics of this manager.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export default fp(async function httpMetricsPlugin(app: FastifyInstance, options: { registry: Registry }) {
  const labelNames = ['method', 'route', 'status_code'] as const;
  const requests = new Counter({
    name: 'jobbers_http_requests_total',
    help: 'HTTP requests served by this manager',
    labelNames,
    registers: [options.registry],
  });
  const duration = new Histogram({
    name: 'jobbers_http_request_duration_seconds',
    help: 'HTTP request duration in this manager',
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [options.registry],
  });
  const inflight = new Gauge({
    name: 'jobbers_http_inflight_requests',
    help: 'HTTP requests in flight in this manager',
    labelNames: ['method', 'route'],
    registers: [options.registry],
  });
  const started = new WeakMap<object, bigint>();
  const routeOf = (request: { routeOptions: { url?: string } }) => request.routeOptions.url ?? 'unmatched';

  app.addHook('onRequest', async (request) => {
    started.set(request, process.hrtime.bigint());
    inflight.inc({ method: request.method, route: routeOf(request) });
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = routeOf(request);
    inflight.dec({ method: request.method, route });
    const labels = { method: request.method, route, status_code: String(reply.statusCode) };
    requests.inc(labels);
    const start = started.get(request);
    if (start !== undefined) duration.observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
  });
});
