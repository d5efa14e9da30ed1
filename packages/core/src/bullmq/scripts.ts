// BullMQ's own scripts run inside Jobbers' transactions and pipelines, through its protected API.
import { Job, type JobsOptions, type Queue } from 'bullmq';
import type { ChainableCommander } from 'ioredis';

type RemoveArgs = (jobId: string, removeChildren: boolean) => (string | number)[];

interface ScriptsInternals {
  removeArgs?: RemoveArgs;
  execCommand(client: unknown, command: string, args: (string | number)[]): unknown;
}

/**
 * Queues BullMQ's removeJob for this one job (never its children) on a MULTI or pipeline. Its reply:
 * 1 removed (or already gone), 0 the job is locked (active), a negative code the job belongs to a
 * job scheduler. BullMQ emits `removed` on the queue's event stream.
 */
export function queueRemoveJob(queue: Queue, commands: ChainableCommander, id: string): void {
  const scripts = queue.scripts as unknown as ScriptsInternals;
  if (typeof scripts.removeArgs !== 'function') {
    throw new Error('this BullMQ version has no Scripts.removeArgs; packages/core/src/bullmq needs updating');
  }
  scripts.execCommand(commands, 'removeJob', scripts.removeArgs.call(queue.scripts, id, false));
}

export interface JobToAdd {
  id: string;
  /** The job name: the task type. */
  name: string;
  data: unknown;
  opts: JobsOptions;
}

/**
 * Sends BullMQ's add of this job on `commands`: the client itself (no pipeline: building one copies
 * every script command the connection knows) or a pipeline, as Queue.addBulk does. On the client it
 * resolves with the job id; on a pipeline the command is queued synchronously and its reply comes
 * with exec, so it only settles whether BullMQ could build the command (it rejects when not).
 */
export function addJob(queue: Queue, commands: unknown, job: JobToAdd): Promise<string> {
  return new Job(queue, job.name, job.data, job.opts, job.id).addJob(commands as never);
}
