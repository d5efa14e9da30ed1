// A workflow's overhead: N example.square tasks fanned out and merged by one example.sum, as one
// workflow, against the same tasks submitted flat (batches of 1,000, then the sum once every square
// completed, as a caller without workflows would do). One jobbers-manager and one jobbers-worker
// process; both variants are polled the same way (every 50 ms) and rounds alternate their order.
import { uniquePrefix } from '../test/support/redis-server.js';
import { type ManagerProcess, startManagerProcess, startWorkerProcess } from '../test/support/stack.js';
import { waitFor } from '../test/support/wait.js';

export type WorkflowVariant = 'flat' | 'workflow';

export interface WorkflowRun {
  round: number;
  variant: WorkflowVariant;
  nodes: number;
  seconds: number;
}

export interface WorkflowBenchOptions {
  redisUrl: string;
  nodes: number;
  rounds: number;
  concurrency: number;
  print(line: string): void;
}

const pollMs = 50;

async function completedCount(manager: ManagerProcess): Promise<number> {
  const reply = await manager.request('GET', '/v1/queues/default');
  return Number(reply.body.counts.completed);
}

async function flat(manager: ManagerProcess, nodes: number): Promise<number> {
  const before = await completedCount(manager);
  const started = performance.now();
  for (let done = 0; done < nodes; done += 1000) {
    const size = Math.min(1000, nodes - done);
    const reply = await manager.request('POST', '/v1/tasks/batch', {
      tasks: Array.from({ length: size }, (_, i) => ({ task: 'example.square', params: { n: done + i } })),
    });
    if (reply.status !== 201) throw new Error(`batch submit: ${reply.status} ${JSON.stringify(reply.body)}`);
  }
  await waitFor(async () => (await completedCount(manager)) >= before + nodes, {
    timeoutMs: 600_000,
    intervalMs: pollMs,
    what: 'the flat squares to complete',
  });
  const sum = await manager.request('POST', '/v1/tasks', { task: 'example.sum', params: {} });
  await waitFor(
    async () => (await manager.request('GET', `/v1/tasks/${sum.body.id}`)).body.state === 'completed',
    {
      timeoutMs: 60_000,
      intervalMs: pollMs,
      what: 'the flat sum to complete',
    },
  );
  return (performance.now() - started) / 1000;
}

async function workflow(manager: ManagerProcess, nodes: number): Promise<number> {
  const started = performance.now();
  const reply = await manager.request('POST', '/v1/workflows', {
    name: 'bench-fan-out',
    nodes: [
      {
        key: 'sq',
        task: 'example.square',
        fanOut: { params: Array.from({ length: nodes }, (_, n) => ({ n })) },
      },
      { key: 'sum', task: 'example.sum', params: {}, dependsOn: ['sq'] },
    ],
  });
  if (reply.status !== 201) throw new Error(`workflow submit: ${reply.status} ${JSON.stringify(reply.body)}`);
  const state = await waitFor(
    async () => {
      const view = await manager.request('GET', `/v1/workflows/${reply.body.id}`);
      return view.body.state === 'running' ? undefined : view.body.state;
    },
    { timeoutMs: 600_000, intervalMs: pollMs, what: 'the workflow to finish' },
  );
  if (state !== 'completed') throw new Error(`the bench workflow ended ${state}`);
  return (performance.now() - started) / 1000;
}

export async function runWorkflowBench(options: WorkflowBenchOptions): Promise<WorkflowRun[]> {
  const env = {
    REDIS_URL: options.redisUrl,
    JOBBERS_PREFIX: uniquePrefix('bench-workflow'),
    LOG_LEVEL: 'warn',
  };
  const manager = await startManagerProcess(env);
  const worker = await startWorkerProcess({
    ...env,
    LOG_LEVEL: 'info',
    WORKER_METRICS_PORT: '0',
    WORKER_CONCURRENT_TASKS: String(options.concurrency),
  });
  const runs: WorkflowRun[] = [];
  try {
    await flat(manager, Math.min(options.nodes, 200));
    await workflow(manager, Math.min(options.nodes, 200));
    options.print('(warm-up: one small flat and one small workflow run, not counted)');
    for (let round = 1; round <= options.rounds; round++) {
      const order: WorkflowVariant[] = round % 2 === 1 ? ['flat', 'workflow'] : ['workflow', 'flat'];
      for (const variant of order) {
        const seconds =
          variant === 'flat' ? await flat(manager, options.nodes) : await workflow(manager, options.nodes);
        runs.push({ round, variant, nodes: options.nodes, seconds });
        options.print(
          `round ${round}  ${variant.padEnd(8)} ${options.nodes} squares + 1 sum in ${seconds.toFixed(2)} s`,
        );
      }
    }
  } finally {
    await worker.stop();
    await manager.stop();
  }
  return runs;
}
