// REST submit throughput: the manager app in this process on 127.0.0.1, built as jobbers-manager
// builds it (exporter on), loaded by autocannon running in a worker thread so the load generator
// does not share the manager's event loop.
import {
  exporterStateKey,
  loadTasks,
  readAvailableByTask,
  renderClusterMetrics,
  type TaskRegistry,
} from '@jobbers/core';
import { buildManagerApp } from '@jobbers/manager';
import autocannon from 'autocannon';
import type { Redis } from 'ioredis';
import { startManagerExporter } from './manager-exporter.js';

export interface RestSettings {
  redisUrl: string;
  admin: Redis;
  seconds: number;
  connections: number;
  batchSize: number;
}

export interface RestRun {
  name: string;
  route: string;
  tasksPerRequest: number;
  requestsPerSecond: number;
  tasksPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  ok: number;
  non2xx: number;
  errors: number;
  /** Jobs found in the queue afterwards; should equal ok * tasksPerRequest. */
  enqueued: number;
  /** Times the manager's exporter had to recount the queue (it fell behind a trimmed stream). */
  exporterRecounts: number;
}

async function startManager(redisUrl: string, prefix: string, registry: TaskRegistry) {
  const { connection, stop } = await startManagerExporter(redisUrl, prefix, registry, 'bench-manager');
  const { app } = await buildManagerApp({
    config: { prefix, apiKeys: [], bodyLimitBytes: 1024 * 1024 },
    registry,
    connection,
    clusterMetrics: () => renderClusterMetrics({ redis: connection, prefix, registry }),
    availableByTask: (queue) => readAvailableByTask(connection, prefix, queue),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    close: async () => {
      await app.close();
      await stop();
    },
  };
}

async function load(
  settings: RestSettings,
  registry: TaskRegistry,
  name: string,
  route: string,
  body: unknown,
  tasksPerRequest: number,
): Promise<RestRun> {
  const prefix = `bench-rest-${process.pid}-${name}`;
  const manager = await startManager(settings.redisUrl, prefix, registry);
  try {
    const result = await autocannon({
      url: `${manager.baseUrl}${route}`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      connections: settings.connections,
      duration: settings.seconds,
      workers: 1,
      timeout: 10,
    });
    const enqueued = await settings.admin.llen(`${prefix}:default:wait`);
    const recounts = Number(
      (await settings.admin.hget(exporterStateKey(prefix, 'default'), 'recounts')) ?? 0,
    );
    const ok = result['2xx'];
    return {
      name,
      route,
      tasksPerRequest,
      requestsPerSecond: ok / result.duration,
      tasksPerSecond: (ok * tasksPerRequest) / result.duration,
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      maxMs: result.latency.max,
      ok,
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts,
      enqueued,
      exporterRecounts: Math.max(0, recounts - 1),
    };
  } finally {
    await manager.close();
    await settings.admin.flushall();
  }
}

export async function runRestBench(settings: RestSettings): Promise<RestRun[]> {
  const registry = await loadTasks('@jobbers/examples');
  const echo = { task: 'example.echo', params: { hello: 'bench' } };
  const batch = {
    tasks: Array.from({ length: settings.batchSize }, (_, i) => ({ task: 'example.echo', params: { i } })),
  };
  return [
    await load(settings, registry, 'single', '/v1/tasks', echo, 1),
    await load(settings, registry, 'batch', '/v1/tasks/batch', batch, settings.batchSize),
  ];
}
