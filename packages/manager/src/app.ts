// The manager's Fastify app: a plugin per concern, schemas on every route.
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  defaultProcessMetricsPrefix,
  isRedisUnavailableError,
  LifecycleFeed,
  type LifecycleFeedOptions,
  type Logger,
  type ManagerConfig,
  processMetrics,
  promMetricOptions,
  registerProcessHealthMetrics,
  Schedules,
  TaskClient,
  type TaskRegistry,
  Workflows,
} from '@jobbers/core';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Redis } from 'ioredis';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { openapiOptions } from './openapi.js';
import authPlugin from './plugins/auth.js';
import errorsPlugin, { clientError, frameworkError } from './plugins/errors.js';
import httpMetricsPlugin from './plugins/http-metrics.js';
import requestBoundsPlugin from './plugins/request-bounds.js';
import { RequestLogController } from './plugins/request-log.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { type AvailableReader, queueRoutes } from './routes/queues.js';
import { scheduleRoutes } from './routes/schedules.js';
import { statsRoutes } from './routes/stats.js';
import { taskRoutes } from './routes/tasks.js';
import { workerRoutes } from './routes/workers.js';
import { workflowRoutes } from './routes/workflows.js';
import { createValidatorCompiler, formatSchemaErrors } from './validation.js';

export interface ManagerAppOptions {
  config: Pick<ManagerConfig, 'prefix' | 'apiKeys' | 'bodyLimitBytes'>;
  registry: TaskRegistry;
  connection: Redis;
  logger?: FastifyServerOptions['loggerInstance'];
  /** Cluster-wide metrics text appended to /metrics (the lifecycle metrics read from Redis). */
  clusterMetrics?: () => Promise<string>;
  availableByTask?: AvailableReader;
  /** How often to check that the stats history has this minute's snapshot; 0: never. @default 10000 */
  statsRecordEveryMs?: number;
  /**
   * The lifecycle exporter this process runs, if any: GET /v1/events takes the batches it reads
   * (of the queues it leads) instead of reading the streams again.
   */
  exporter?: LifecycleFeedOptions['exporter'];
  /** Bounds of GET /v1/events (see EventRoutesOptions). */
  events?: { maxStreams?: number; maxBufferedBytes?: number; keepAliveMs?: number };
  /** A request not fully received in this time is answered 408 and its connection closed. @default 30000 */
  requestTimeoutMs?: number;
}

/** Above the longest id (128) and queue name (64); longer path segments answer 414. */
const maxParamLength = 256;

export interface ManagerApp {
  app: FastifyInstance;
  client: TaskClient;
  processRegistry: Registry;
}

export async function buildManagerApp(options: ManagerAppOptions): Promise<ManagerApp> {
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    bodyLimit: options.config.bodyLimitBytes,
    logController: new RequestLogController(),
    // Slow (trickling) requests are cut off; Node checks the deadline every connectionsCheckingInterval.
    requestTimeout: requestTimeoutMs,
    http: {
      headersTimeout: Math.min(60_000, requestTimeoutMs),
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(requestTimeoutMs / 4))),
    },
    routerOptions: { maxParamLength },
    frameworkErrors: frameworkError,
    clientErrorHandler: clientError,
    schemaErrorFormatter: formatSchemaErrors,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(createValidatorCompiler());
  const client = new TaskClient({
    connection: options.connection,
    prefix: options.config.prefix,
    registry: options.registry,
  });
  const workflows = new Workflows(options.connection, options.config.prefix, client);
  const schedules = new Schedules(options.connection, options.config.prefix, client);
  const processRegistry = new Registry();
  const feed = new LifecycleFeed({
    connection: options.connection,
    prefix: options.config.prefix,
    queues: options.registry.queues,
    partitions: options.registry,
    logger: app.log as Logger,
    exporter: options.exporter,
  });
  // The event-loop delay is sampled every millisecond (prom-client's default, 10 ms, hides the
  // few-ms stalls that delay submissions); its histogram restarts at every scrape.
  collectDefaultMetrics({
    register: processRegistry,
    prefix: defaultProcessMetricsPrefix.manager,
    eventLoopMonitoringPrecision: 1,
  });
  registerProcessHealthMetrics(processRegistry);

  app.removeContentTypeParser('text/plain');
  await app.register(errorsPlugin, { maxParamLength });
  await app.register(requestBoundsPlugin);
  await app.register(swagger, openapiOptions(options.registry, options.config.apiKeys));
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(httpMetricsPlugin, { registry: processRegistry });
  await app.register(healthRoutes, { connection: options.connection });
  // Every /v1 route lives in this one context, so its auth hook guards the route that was matched,
  // not a spelling of the URL.
  await app.register(
    async (v1) => {
      await v1.register(authPlugin, { apiKeys: options.config.apiKeys });
      await v1.register(taskRoutes, { client });
      await v1.register(workflowRoutes, { workflows });
      await v1.register(scheduleRoutes, { schedules });
      await v1.register(statsRoutes, {
        connection: options.connection,
        keyPrefix: options.config.prefix,
        registry: options.registry,
        recordEveryMs: options.statsRecordEveryMs,
      });
      await v1.register(workerRoutes, { connection: options.connection, keyPrefix: options.config.prefix });
      await v1.register(eventRoutes, { feed, registry: options.registry, ...options.events });
      await v1.register(queueRoutes, {
        client,
        connection: options.connection,
        availableByTask: options.availableByTask,
      });
    },
    { prefix: '/v1' },
  );

  // The console: static files built into the package; it calls only the /v1 API, with its keys.
  await app.register(fastifyStatic, {
    root: fileURLToPath(new URL('./console/', import.meta.url)),
    prefix: '/ui/',
    decorateReply: false,
    cacheControl: false,
  });
  app.get('/ui', { schema: { hide: true } }, (_request, reply) => reply.redirect('/ui/'));

  const readCluster = clusterMetricsReader(app, processRegistry, options.clusterMetrics);
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    const cluster = await readCluster();
    const own = await processRegistry.metrics();
    return reply.type(processRegistry.contentType).send(`${cluster}${own}`);
  });

  const stopSync = syncScheduleDefinitions(app, schedules, options.registry);
  app.addHook('onClose', async () => {
    stopSync();
    await feed.stop();
    await client.close();
  });
  return { app, client, processRegistry };
}

/**
 * Makes the schedules of the task definitions at start; while Redis cannot take them, tries again
 * every 5 s (logged once). A definition that cannot be scheduled (its params no longer valid) is
 * logged as an error and left. Returns the function that stops trying.
 */
function syncScheduleDefinitions(
  app: FastifyInstance,
  schedules: Schedules,
  registry: TaskRegistry,
): () => void {
  if (!registry.definitions.some((def) => def.schedule)) return () => {};
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let warned = false;
  const attempt = async () => {
    try {
      await schedules.syncDefinitions(registry, app.log as Logger);
    } catch (error) {
      if (stopped) return;
      if (!isRedisUnavailableError(error)) {
        app.log.error({ err: error }, 'the schedules of the task definitions could not be made');
        return;
      }
      if (!warned)
        app.log.warn({ err: error }, 'schedules of task definitions not made yet: Redis is unavailable');
      warned = true;
      timer = setTimeout(attempt, 5000);
    }
  };
  void attempt();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/**
 * The cluster series for /metrics, or none while Redis cannot be read: /metrics then still serves
 * this process's metrics, with jobbers_cluster_metrics_up 0 to alert on. Logs once per outage.
 */
function clusterMetricsReader(
  app: FastifyInstance,
  processRegistry: Registry,
  clusterMetrics: (() => Promise<string>) | undefined,
): () => Promise<string> {
  if (!clusterMetrics) return async () => '';
  const up = new Gauge({
    ...promMetricOptions(processMetrics.clusterMetricsUp),
    registers: [processRegistry],
  });
  let downSince: number | undefined;
  return async () => {
    try {
      const text = await clusterMetrics();
      up.set(1);
      if (downSince !== undefined) {
        app.log.info({ unreadableForMs: Date.now() - downSince }, 'cluster metrics readable again');
        downSince = undefined;
      }
      return text;
    } catch (error) {
      up.set(0);
      if (downSince === undefined) {
        downSince = Date.now();
        app.log.warn({ err: error }, 'cluster metrics unreadable: /metrics serves process metrics only');
      }
      return '';
    }
  };
}
