// Helpers for the manager's task-management tests: a real worker process, task states over HTTP,
// and the cluster metrics once the in-process exporter has applied every event.

import { after, before } from 'node:test';
import { loadTasks, type TaskRegistry } from '@jobbers/core';
import { startTestManager, type TestManager } from '../../../../test/support/manager.js';
import { clusterSamples, metricValue } from '../../../../test/support/metrics.js';
import { bins, type RunningProcess, startProcess } from '../../../../test/support/processes.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../../test/support/redis-server.js';
import { waitFor } from '../../../../test/support/wait.js';

export async function startWorker(
  redisUrl: string,
  prefix: string,
  env: Record<string, string> = {},
): Promise<RunningProcess> {
  const worker = startProcess(bins.worker, [], {
    REDIS_URL: redisUrl,
    JOBBERS_PREFIX: prefix,
    JOBBERS_TASKS: '@jobbers/examples',
    WORKER_METRICS_PORT: '0',
    ...env,
  });
  await worker.waitForOutput(/worker started/, 20_000);
  return worker;
}

/** Polls GET /v1/tasks/:id until the task is in one of `states`; returns its view. */
export function taskInState(
  manager: TestManager,
  id: string,
  states: string[],
  timeoutMs = 15_000,
): Promise<any> {
  return waitFor(
    async () => {
      const res = await manager.request('GET', `/v1/tasks/${id}`);
      return states.includes(res.body?.state) ? res.body : undefined;
    },
    { timeoutMs, what: `task ${id} to be ${states.join(' or ')}` },
  );
}

let registry: TaskRegistry | undefined;

/** Reads one cluster metric after the manager's exporter has caught up with the event stream. */
export async function clusterMetric(
  manager: TestManager,
  prefix: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  if (!manager.exporter) throw new Error('start the manager with exporter: true');
  await manager.exporter.waitUntilCaughtUp();
  registry ??= await loadTasks('@jobbers/examples');
  return metricValue(await clusterSamples(manager.connection, prefix, registry), name, labels);
}

export function transitions(manager: TestManager, prefix: string, task: string, transition: string) {
  return clusterMetric(manager, prefix, 'jobbers_job_transitions_total', {
    queue: 'default',
    task,
    transition,
  });
}

export interface Stack {
  redis: RedisServer;
  prefix: string;
  manager: TestManager;
  worker: RunningProcess;
}

/** For the whole file: a private redis-server, an in-process manager with the exporter, one worker process. */
export function useManagerWithWorker(label: string): Stack {
  const stack = {} as Stack;
  before(async () => {
    stack.redis = await startRedisServer();
    stack.prefix = uniquePrefix(label);
    stack.manager = await startTestManager({
      redisUrl: stack.redis.url,
      prefix: stack.prefix,
      exporter: true,
    });
    await stack.manager.exporter!.waitUntilReady();
    stack.worker = await startWorker(stack.redis.url, stack.prefix);
  });
  after(async () => {
    await stack.worker?.stop();
    await stack.manager?.close();
    await stack.redis?.stop();
  });
  return stack;
}
