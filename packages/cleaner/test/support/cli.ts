// Runs the real jobbers-cleaner bin and keeps stdout, stderr and the --json report apart.
import type { CleanerReport } from '@jobbers/cleaner';
import { bins, type RunningProcess, startProcess } from '../../../../test/support/processes.js';

export interface CleanerRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The --json report, when stdout holds one. */
  report?: CleanerReport;
}

export interface CleanerTarget {
  redisUrl: string;
  prefix: string;
  env?: Record<string, string>;
}

/** Runs the bin to its exit; several may run at once. */
export function runCleanerBin(
  target: CleanerTarget,
  args: string[],
  options: { killAfterMs?: number } = {},
): Promise<CleanerRun> {
  return startCleanerBin(target, args, options).finished;
}

/** Starts the bin; `finished` resolves at its exit, `process` is there to signal it. */
export function startCleanerBin(
  target: CleanerTarget,
  args: string[],
  { killAfterMs = 90_000 }: { killAfterMs?: number } = {},
): { process: RunningProcess; finished: Promise<CleanerRun> } {
  const proc = startProcess(bins.cleaner, args, {
    REDIS_URL: target.redisUrl,
    JOBBERS_PREFIX: target.prefix,
    JOBBERS_TASKS: '',
    ...target.env,
  });
  let stdout = '';
  let stderr = '';
  proc.child.stdout?.on('data', (d) => (stdout += d));
  proc.child.stderr?.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => {
    stderr += `\n[test harness] cleaner killed: still running after ${killAfterMs} ms\n`;
    proc.kill('SIGKILL');
  }, killAfterMs);
  const finished = proc.exited.then(({ code }) => {
    clearTimeout(timer);
    let report: CleanerReport | undefined;
    if (args.includes('--json') && stdout.trim().startsWith('{')) report = JSON.parse(stdout);
    return { code, stdout, stderr, report };
  });
  return { process: proc, finished };
}
