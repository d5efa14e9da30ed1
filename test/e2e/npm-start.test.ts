// The README's first command: `npm start` runs a manager, a worker and the example tasks, starting a
// throwaway redis-server when none answers at REDIS_URL. Submit over HTTP, see it complete.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, test } from 'node:test';
import { repoRoot } from '../support/processes.js';
import { freePort } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

let child: ReturnType<typeof spawn> | undefined;
let output = '';

after(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
});

test('npm start serves the API and runs example.echo, with a throwaway Redis', {
  timeout: 60_000,
}, async () => {
  const [redisPort, managerPort, workerPort] = [await freePort(), await freePort(), await freePort()];
  child = spawn(process.execPath, ['scripts/start.mjs'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      MANAGER_PORT: String(managerPort),
      WORKER_METRICS_PORT: String(workerPort),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const base = `http://127.0.0.1:${managerPort}`;
  await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, {
    timeoutMs: 30_000,
    what: 'the manager',
  });
  assert.match(output, /starting a throwaway redis-server/);
  await waitFor(() => /worker started/.test(output), { what: 'the worker' });

  const submitted = await fetch(`${base}/v1/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ task: 'example.echo', params: { hello: 'world' } }),
  });
  assert.equal(submitted.status, 201);
  const { id } = (await submitted.json()) as { id: string };
  const task = await waitFor(
    async () => {
      const body = (await (await fetch(`${base}/v1/tasks/${id}`)).json()) as {
        state: string;
        result?: unknown;
      };
      return body.state === 'completed' ? body : undefined;
    },
    { what: 'the echo task to complete' },
  );
  assert.deepEqual(task.result, { hello: 'world' });
  const metrics = await waitFor(
    async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return (
        /jobbers_tasks_processed_total\{queue="default",task="example.echo",status="completed"\} 1/.test(
          text,
        ) && text
      );
    },
    { what: 'the processed counter to reach 1' },
  );
  assert.match(metrics, /jobbers_jobs_available\{queue="default",task="example.echo"\} 0/);

  const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  await assert.rejects(fetch(`${base}/healthz`), 'the manager stopped with npm start');
});
