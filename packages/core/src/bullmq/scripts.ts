// BullMQ's own scripts run inside Jobbers' transactions and pipelines, through its Redis backend.
import { Job, type JobsOptions, type Queue } from 'bullmq';
import type { ChainableCommander, Redis } from 'ioredis';

interface RedisBackendInternals {
  /** The connection as BullMQ wraps it: its script commands run on it and on its MULTIs and pipelines. */
  readonly client: Promise<unknown>;
  removeArgs?: (jobId: string, removeChildren: boolean) => (string | number)[];
  execCommand(client: unknown, command: string, args: (string | number)[]): unknown;
}

function redisBackend(queue: Queue): RedisBackendInternals {
  return queue.getBackend() as unknown as RedisBackendInternals;
}

/**
 * The queue's connection as BullMQ sees it. Transactions and pipelines made from it (`multi()`,
 * `pipeline()`) can carry BullMQ's scripts (queueRemoveJob, addJob); its other commands are the
 * ioredis connection's own. Its `hset` on a transaction or pipeline takes a field object only.
 */
export async function bullmqConnection(queue: Queue): Promise<Redis> {
  return (await redisBackend(queue).client) as Redis;
}

/**
 * Queues BullMQ's removeJob for this one job (never its children) on a MULTI or pipeline made from
 * bullmqConnection. Its reply: 1 removed (or already gone), 0 the job is locked (active), a negative
 * code the job belongs to a job scheduler. BullMQ emits `removed` on the queue's event stream.
 */
export function queueRemoveJob(queue: Queue, commands: ChainableCommander, id: string): void {
  const backend = redisBackend(queue);
  if (typeof backend.removeArgs !== 'function') {
    throw new Error(
      'this BullMQ version has no removeArgs on its Redis backend; packages/core/src/bullmq needs updating',
    );
  }
  backend.execCommand(commands, 'removeJob', backend.removeArgs(id, false));
}

export interface JobToAdd {
  id: string;
  /** The job name: the task type. */
  name: string;
  data: unknown;
  opts: JobsOptions;
}

/**
 * Sends BullMQ's add of this job on `commands`: bullmqConnection itself (no pipeline: building one
 * copies every script command the connection knows) or a pipeline made from it, as Queue.addBulk
 * does. On the connection it resolves with the job id; on a pipeline the command is queued
 * synchronously and its reply comes with exec, so it only settles whether BullMQ could build the
 * command (it rejects when not).
 */
export function addJob(queue: Queue, commands: Redis | ChainableCommander, job: JobToAdd): Promise<string> {
  return new Job(queue, job.name, job.data, job.opts, job.id).addJob(commands as never);
}
