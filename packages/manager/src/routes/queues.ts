import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  type AvailableByTask,
  countAvailableByTask,
  JobbersError,
  QueueList,
  QueueParams,
  QueueSummary,
  readJobCounts,
  type TaskClient,
} from '@jobbers/core';
import type { Redis } from 'ioredis';
import { errorResponses } from '../schemas.js';

export type AvailableReader = (queue: string) => Promise<AvailableByTask>;

export interface QueueRoutesOptions {
  client: TaskClient;
  connection: Redis;
  availableByTask?: AvailableReader;
}

export const queueRoutes: FastifyPluginAsyncTypebox<QueueRoutesOptions> = async (app, options) => {
  const { client } = options;
  const readAvailable: AvailableReader =
    options.availableByTask ??
    (async (queue) => ({
      available: await countAvailableByTask(options.connection, client.prefix, queue),
      recounting: false,
    }));

  function knownQueue(name: string): string {
    if (!client.registry.queues.includes(name))
      throw new JobbersError('QUEUE_NOT_FOUND', `no queue "${name}"`);
    return name;
  }

  /** A partitioned queue's counts are the sums over its partitions (paused when any is). */
  async function summary(name: string) {
    const parts = await Promise.all(
      client.registry
        .storageQueues(name)
        .map((storage) =>
          Promise.all([
            readJobCounts(options.connection, client.prefix, storage),
            client.queue(storage).isPaused(),
            readAvailable(storage),
          ]),
        ),
    );
    const counts: Record<string, number> = {};
    // Unknown while any partition has not been counted yet; recounting while any is.
    let available: Map<string, number> | undefined = new Map();
    for (const [partCounts, , partAvailable] of parts) {
      for (const [state, count] of Object.entries(partCounts)) counts[state] = (counts[state] ?? 0) + count;
      if (!partAvailable.available) available = undefined;
      for (const [task, count] of partAvailable.available ?? []) {
        available?.set(task, (available.get(task) ?? 0) + count);
      }
    }
    const paused = parts.some(([, partPaused]) => partPaused);
    const recounting = parts.some(([, , partAvailable]) => partAvailable.recounting);
    const tasks = client.registry.definitions
      .filter((d) => d.queue === name || d.queues?.includes(name))
      .map((d) => d.name);
    // null while the exporter has not yet counted the queue: unknown, never a false 0.
    const availableByName: Record<string, number | null> = {};
    for (const task of tasks) availableByName[task] = available ? (available.get(task) ?? 0) : null;
    return { name, paused, counts, available: availableByName, recounting, tasks };
  }

  app.get(
    '/queues',
    {
      schema: {
        operationId: 'listQueues',
        summary: 'List queues with their counts',
        tags: ['queues'],
        response: { 200: QueueList, ...errorResponses(503) },
      },
    },
    async () => ({ queues: await Promise.all(client.registry.queues.map(summary)) }),
  );

  app.get(
    '/queues/:queue',
    {
      schema: {
        operationId: 'getQueue',
        summary: 'One queue: counts per state and available jobs per task type',
        tags: ['queues'],
        params: QueueParams,
        response: { 200: QueueSummary, ...errorResponses(400, 404, 414, 503) },
      },
    },
    async (request) => summary(knownQueue(request.params.queue)),
  );

  app.post(
    '/queues/:queue/pause',
    {
      schema: {
        operationId: 'pauseQueue',
        summary: 'Pause a queue: workers take no new task from it; running tasks finish',
        tags: ['queues'],
        params: QueueParams,
        response: { 200: QueueSummary, ...errorResponses(400, 404, 413, 414, 415, 503) },
      },
    },
    async (request) => {
      const name = knownQueue(request.params.queue);
      await client.pauseQueue(name);
      return summary(name);
    },
  );

  app.post(
    '/queues/:queue/resume',
    {
      schema: {
        operationId: 'resumeQueue',
        summary: 'Resume a paused queue',
        tags: ['queues'],
        params: QueueParams,
        response: { 200: QueueSummary, ...errorResponses(400, 404, 413, 414, 415, 503) },
      },
    },
    async (request) => {
      const name = knownQueue(request.params.queue);
      await client.resumeQueue(name);
      return summary(name);
    },
  );
};
