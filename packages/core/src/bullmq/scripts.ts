// BullMQ's own scripts run inside Jobbers' transactions and pipelines, through its Redis backend.
import { Job, type JobsOptions, type Queue } from 'bullmq';
import type { ChainableCommander, Redis } from 'ioredis';
import { scripts } from '../lua/registry.js';

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

/**
 * What addJobUnlessIdTaken did: added the job (BullMQ's reply: its id, or the id of the job
 * deduplication kept in its place), or found its id taken (lua/id-taken.lua's reply, as a claim's).
 */
export type GuardedAdd = { outcome: 'added'; id: string } | { outcome: 'taken'; reply: [string, string] };

interface DefinedScript {
  lua: string;
  numberOfKeys: number | null;
}

/**
 * The command running lua/id-taken.lua, then BullMQ's script `name` (one of its add scripts), as one
 * script: defined on the connection the first time it is asked for.
 */
function guardedAddCommand(connection: Redis, name: string): { command: string; bullmqKeys: number } {
  const command = `jobbersUnlessIdTaken:${name}`;
  const defined = (connection as unknown as { scriptsSet?: Record<string, DefinedScript> }).scriptsSet;
  const bullmq = defined?.[name];
  if (typeof bullmq?.lua !== 'string' || typeof bullmq.numberOfKeys !== 'number') {
    throw new Error(
      `BullMQ's script ${name} is not defined on the connection; packages/core/src/bullmq needs updating`,
    );
  }
  if (!defined?.[command])
    connection.defineCommand(command, { lua: `${scripts.idTaken.lua}\n${bullmq.lua}` });
  return { command, bullmqKeys: bullmq.numberOfKeys };
}

/**
 * Adds the job as BullMQ's add does, unless its id is taken, in one script: lua/id-taken.lua with
 * `idKeys` (the id's claim, then its job hash in every queue) and `ownClaim` (the caller's claim
 * value, '' for none: a claim holding it is the caller's own) runs first, in the same script as
 * BullMQ's add, so no submission can add the id in between. Every key must be in one slot.
 */
export async function addJobUnlessIdTaken(
  queue: Queue,
  connection: Redis,
  job: JobToAdd,
  idKeys: readonly string[],
  ownClaim: string,
): Promise<GuardedAdd> {
  // BullMQ defines its scripts on the connection once the queue's client is ready.
  await redisBackend(queue).client;
  const guarded = {
    // BullMQ's Redis backend runs its add through runCommand(name, [...keys, ...args]).
    runCommand: (name: string, args: unknown[]) => {
      const { command, bullmqKeys } = guardedAddCommand(connection, name);
      const run = (connection as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[command]!;
      return run.call(
        connection,
        bullmqKeys + idKeys.length,
        ...args.slice(0, bullmqKeys),
        ...idKeys,
        ...args.slice(bullmqKeys),
        ownClaim,
        idKeys.length,
      );
    },
  };
  const reply: unknown = await new Job(queue, job.name, job.data, job.opts, job.id).addJob(guarded as never);
  if (Array.isArray(reply)) return { outcome: 'taken', reply: reply as [string, string] };
  return { outcome: 'added', id: String(reply) };
}
