// Real Jobbers processes for tests: spawned from the built bins, with their output kept.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export const bins = {
  manager: `${repoRoot}packages/manager/dist/bin.js`,
  worker: `${repoRoot}packages/worker/dist/bin.js`,
  cleaner: `${repoRoot}packages/cleaner/dist/bin.js`,
};

export interface RunningProcess {
  child: ChildProcess;
  output(): string;
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
  stop(): Promise<void>;
}

export function startProcess(
  bin: string,
  args: string[],
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
): RunningProcess {
  const child = spawn(process.execPath, [...nodeArgs, bin, ...args], {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    output: () => output,
    exited,
    waitForOutput: (pattern, timeoutMs = 15_000) =>
      waitFor(
        () => {
          if (pattern.test(output)) return true;
          if (child.exitCode !== null)
            throw new Error(`process exited (${child.exitCode}) before ${pattern}: ${output}`);
          return false;
        },
        { timeoutMs, what: `${pattern} in output` },
      ).then(() => undefined),
    kill: (signal = 'SIGTERM') => {
      child.kill(signal);
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export function runProcess(bin: string, args: string[], env: Record<string, string>, timeoutMs = 60_000) {
  const proc = startProcess(bin, args, env);
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  return proc.exited.then((result) => {
    clearTimeout(timer);
    return { ...result, output: proc.output() };
  });
}
