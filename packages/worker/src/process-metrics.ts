// Per-process worker metrics and the health endpoint on WORKER_METRICS_PORT.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  defaultProcessMetricsPrefix,
  processMetrics,
  promMetricOptions,
  registerProcessHealthMetrics,
} from '@jobbers/core';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

export class WorkerProcessMetrics {
  readonly registry = new Registry();
  readonly runningTasks: Gauge<'role'>;
  readonly capacity: Gauge<'role'>;

  /** @param running read at each scrape: the tasks this process runs now. */
  constructor(
    readonly role: string,
    running: () => number = () => 0,
  ) {
    collectDefaultMetrics({ register: this.registry, prefix: defaultProcessMetricsPrefix.worker });
    registerProcessHealthMetrics(this.registry);
    this.runningTasks = new Gauge({
      ...promMetricOptions(processMetrics.workerRunningTasks),
      registers: [this.registry],
      collect() {
        this.set({ role }, running());
      },
    });
    this.capacity = new Gauge({
      ...promMetricOptions(processMetrics.workerCapacity),
      registers: [this.registry],
    });
  }
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

export async function startHealthServer(
  metrics: WorkerProcessMetrics,
  port: number,
  isReady: () => boolean | Promise<boolean>,
): Promise<HealthServer> {
  const server = http.createServer(async (req, res) => {
    if (req.url === '/metrics') {
      res.setHeader('content-type', metrics.registry.contentType);
      res.end(await metrics.registry.metrics());
    } else if (req.url === '/healthz') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ status: 'ok' }));
    } else if (req.url === '/readyz') {
      const ready = await isReady();
      res.statusCode = ready ? 200 : 503;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ status: ready ? 'ready' : 'not ready' }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
