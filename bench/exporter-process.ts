// The lifecycle exporter in a process of its own, as jobbers-manager runs it in production (the
// manager and the workers are separate processes). The drain bench forks it and talks over IPC:
// it answers `caught-up` once every event is applied, with its CPU time, and exits on `stop`.
import { defineTask, TaskRegistry } from '@jobbers/core';
import { startManagerExporter } from './manager-exporter.js';

export type ExporterRequest = { type: 'caught-up' } | { type: 'stop' };
export type ExporterReply =
  | { type: 'ready' }
  | { type: 'caught-up'; cpuUs: number }
  | { type: 'stopped'; cpuUs: number }
  | { type: 'error'; message: string };

const redisUrl = process.env.REDIS_URL!;
const prefix = process.env.JOBBERS_PREFIX!;
const queue = process.env.BENCH_QUEUE!;
const task = process.env.BENCH_TASK!;
const send = (reply: ExporterReply) => process.send?.(reply);
const cpuUs = () => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

const registry = new TaskRegistry([
  defineTask({ name: task, queue, params: { type: 'object' }, run: async () => {} }),
]);
const { exporter, stop } = await startManagerExporter(redisUrl, prefix, registry, 'bench-exporter');
process.on('message', async (request: ExporterRequest) => {
  try {
    if (request.type === 'caught-up') {
      await exporter.waitUntilCaughtUp(60_000);
      send({ type: 'caught-up', cpuUs: cpuUs() });
    } else if (request.type === 'stop') {
      await stop();
      send({ type: 'stopped', cpuUs: cpuUs() });
      process.disconnect();
    }
  } catch (error) {
    send({ type: 'error', message: (error as Error).message });
  }
});
send({ type: 'ready' });
