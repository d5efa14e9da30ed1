// Helpers for the manager's task-management tests: a real worker process, task states over HTTP,
// and the cluster metrics once the in-process exporter has applied every event.
import { loadTasks, type TaskRegistry } from '@jobbers/core';
import type { TestManager } from '../../../../test/support/manager.js';
import { clusterSamples, metricValue } from '../../../../test/support/metrics.js';
import { bins, type RunningProcess, startProcess } from '../../../../test/support/processes.js';
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
