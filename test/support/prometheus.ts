// A private Prometheus (the Debian `prometheus` binary) scraping local targets, with a query client.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './redis-server.js';
import { waitFor } from './wait.js';

export interface PrometheusServer {
  baseUrl: string;
  process: ChildProcess;
  output(): string;
  /** GET /api/v1/<path> with query parameters; throws unless the answer is status success. */
  api(apiPath: string, params?: Record<string, string>): Promise<any>;
  query(expr: string): Promise<{ resultType: string; result: PromSample[] }>;
  stop(): Promise<void>;
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

function prometheusBinary(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('prometheus is not installed: run `apt-get install -y prometheus` (.ci/run does this)');
  }
}

/** Starts Prometheus with the prometheus.yml text `configText` on a free port; waits until it is ready. */
export async function startPrometheus(configText: string): Promise<PrometheusServer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jobbers-prometheus-'));
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(configFile, configText);
  const port = await freePort();
  const child = spawn(
    prometheusBinary(),
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const baseUrl = `http://127.0.0.1:${port}`;
  const api = async (apiPath: string, params: Record<string, string> = {}) => {
    const response = await fetch(`${baseUrl}/api/v1/${apiPath}?${new URLSearchParams(params)}`);
    const body = (await response.json()) as { status: string; data?: unknown; error?: string };
    if (body.status !== 'success')
      throw new Error(`prometheus ${apiPath} ${JSON.stringify(params)}: ${body.status} ${body.error}`);
    return body.data;
  };
  const server: PrometheusServer = {
    baseUrl,
    process: child,
    output: () => output,
    api,
    query: (expr) => api('query', { query: expr }),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}): ${output}`);
        return (await fetch(`${baseUrl}/-/ready`).catch(() => undefined))?.ok;
      },
      { timeoutMs: 20_000, what: 'prometheus to be ready' },
    );
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}
