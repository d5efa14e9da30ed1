// Where the drain's processes run. As deployed, the lifecycle exporter runs in jobbers-manager,
// apart from the workers, with CPU of its own. On a 2-core bench machine nothing has CPU of its
// own: a third busy process takes turns with the worker and redis-server, which costs the worker
// far more than the exporter's own CPU time (each wait for a core stalls the worker's round trips
// to Redis). So the exporter's process gets only CPU that nothing else wants (SCHED_IDLE), and with
// the pinned layout the worker keeps core 0 to itself while redis-server and the exporter share the
// last core. Redis still does all the work the exporter asks of it: that cost is measured in full.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export const layoutNames = ['pinned', 'shared'] as const;
export type LayoutName = (typeof layoutNames)[number];

function missing(tool: string): string | undefined {
  if (os.platform() !== 'linux') return 'not Linux';
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return `${tool} (util-linux) is missing`;
  }
}

/** Why the exporter's process cannot be given idle priority here, or undefined when it can. */
export function idlePriorityUnavailable(): string | undefined {
  return missing('chrt');
}

/** Why the pinned layout cannot be used here, or undefined when it can. */
export function pinningUnavailable(): string | undefined {
  if (os.cpus().length < 2) return 'fewer than 2 CPUs';
  const tool = missing('taskset') ?? missing('chrt');
  if (tool) return tool;
  const allowed = cpusOf(process.pid);
  if (allowed !== allCpus()) return `this process may use only CPUs ${allowed}`;
  return undefined;
}

/** The CPUs `pid` may run on, as /proc lists them ("0-1", "0,2"...). */
export function cpusOf(pid: number): string {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const list = /^Cpus_allowed_list:\s*(\S+)$/m.exec(status)?.[1];
  if (!list) throw new Error(`no Cpus_allowed_list for process ${pid}`);
  return list;
}

/** The pinned layout's CPUs: the worker's process, and redis-server with the exporter's process. */
export function pinnedPlan(): { worker: string; redis: string } {
  return { worker: '0', redis: String(os.cpus().length - 1) };
}

export function allCpus(): string {
  return `0-${os.cpus().length - 1}`;
}

/**
 * Binds every thread of `pid` to `cpus`, written as /proc lists them ("0", "0-1"). Checked after:
 * taskset answers success for a process that is gone.
 */
export function pinProcess(pid: number, cpus: string): void {
  execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', cpus, String(pid)], { stdio: 'ignore' });
  const now = cpusOf(pid);
  if (now !== cpus) throw new Error(`process ${pid} runs on CPUs ${now} after pinning it to ${cpus}`);
}

/** Gives every thread of `pid` the SCHED_IDLE policy: it runs only when a CPU would idle. */
export function runWhenIdle(pid: number): void {
  execFileSync('chrt', ['--all-tasks', '--idle', '--pid', '0', String(pid)], { stdio: 'ignore' });
}
