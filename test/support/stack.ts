// A real jobbers-manager and jobbers-worker as processes, for tests that watch them from outside.
import { type HttpReply, requestJson } from './http.js';
import { bins, type RunningProcess, startProcess } from './processes.js';
import { freePort } from './redis-server.js';
import { waitFor } from './wait.js';

export type { HttpReply };
export { requestJson };

export interface ManagerProcess extends RunningProcess {
  port: number;
  baseUrl: string;
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<HttpReply>;
}

export interface WorkerProcess extends RunningProcess {
  metricsPort: number;
}

/** `nodeArgs` go to node before the bin (e.g. --cpu-prof for a bench). */
export async function startManagerProcess(
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
): Promise<ManagerProcess> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const logsListening = !['warn', 'error', 'fatal', 'silent'].includes(env.LOG_LEVEL ?? 'info');
  const proc = startProcess(
    bins.manager,
    [],
    {
      JOBBERS_TASKS: '@jobbers/examples',
      MANAGER_HOST: '127.0.0.1',
      MANAGER_PORT: String(port),
      ...env,
    },
    nodeArgs,
  );
  await waitFor(
    async () => {
      if (proc.child.exitCode !== null)
        throw new Error(`manager exited (${proc.child.exitCode}): ${proc.output()}`);
      // Its own "listening" line first (logged at info): a port picked free can be taken by another
      // process before this one binds it, and that process's /readyz would answer in its place.
      if (logsListening && !proc.output().includes(`listening at ${baseUrl}`)) return undefined;
      return (await fetch(`${baseUrl}/readyz`).catch(() => undefined))?.ok;
    },
    { timeoutMs: 20_000, what: 'the manager to be ready' },
  );
  return {
    ...proc,
    port,
    baseUrl,
    request: (method, path, body, headers) => requestJson(baseUrl, method, path, body, headers),
  };
}

export async function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  const metricsPort = await freePort();
  const proc = startProcess(bins.worker, [], {
    JOBBERS_TASKS: '@jobbers/examples',
    WORKER_METRICS_PORT: String(metricsPort),
    ...env,
  });
  await proc.waitForOutput(/worker started/, 20_000);
  return { ...proc, metricsPort };
}

/** Polls GET /v1/tasks/:id until the task is completed or failed. */
export function taskFinished(manager: ManagerProcess, id: string, timeoutMs = 20_000): Promise<any> {
  return waitFor(
    async () => {
      const reply = await manager.request('GET', `/v1/tasks/${id}`);
      return ['completed', 'failed'].includes(reply.body?.state) ? reply.body : undefined;
    },
    { timeoutMs, what: `task ${id} to finish` },
  );
}
