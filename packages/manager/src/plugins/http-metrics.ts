// Per-process HTTP metrics of this manager.

import { processMetrics, promMetricOptions } from '@jobbers/core';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export default fp(async function httpMetricsPlugin(app: FastifyInstance, options: { registry: Registry }) {
  const requests = new Counter({
    ...promMetricOptions(processMetrics.httpRequests),
    registers: [options.registry],
  });
  const duration = new Histogram({
    ...promMetricOptions(processMetrics.httpRequestDuration),
    registers: [options.registry],
  });
  const inflight = new Gauge({
    ...promMetricOptions(processMetrics.httpInflightRequests),
    registers: [options.registry],
  });
  const started = new WeakMap<object, bigint>();
  const routeOf = (request: { routeOptions: { url?: string } }) => request.routeOptions.url ?? 'unmatched';

  // Callback hooks: an async hook costs a promise and a microtask per request, on every request.
  app.addHook('onRequest', (request, _reply, done) => {
    started.set(request, process.hrtime.bigint());
    inflight.inc({ method: request.method, route: routeOf(request) });
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const route = routeOf(request);
    inflight.dec({ method: request.method, route });
    const labels = { method: request.method, route, status_code: String(reply.statusCode) };
    requests.inc(labels);
    const start = started.get(request);
    if (start !== undefined) duration.observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
    done();
  });
});
