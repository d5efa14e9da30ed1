// Routing: which queue a submission goes to (and which partition of it), which queues a worker role serves.
import { createHash } from 'node:crypto';
import { JobbersError } from './errors.js';
import { partitionQueueName, queueNamePattern, type TaskDefinition, type TaskRegistry } from './task.js';

export type RoleMap = ReadonlyMap<string, readonly string[]>;

/** The queue for one submission: the task's own, or an override the task allows. */
export function resolveQueue(def: TaskDefinition, requested?: string): string {
  if (requested === undefined || requested === def.queue) return def.queue;
  if (def.queues?.includes(requested)) return requested;
  throw new JobbersError(
    'QUEUE_NOT_ALLOWED',
    `task "${def.name}" cannot run on queue "${requested}"; allowed: ${[def.queue, ...(def.queues ?? [])].join(', ')}`,
  );
}

/**
 * Picks the partition of a partitioned queue for each submission: by the hash of the task's
 * `partitionBy` param (a string as it is, anything else as its JSON text), so every task with one
 * value goes to one partition and keeps its order there; round-robin without `partitionBy` (each
 * manager keeps its own turn).
 */
export class PartitionRouter {
  private readonly turns = new Map<string, number>();

  constructor(private readonly registry: TaskRegistry) {}

  /** The queue that stores the submission: `queue` itself unless it is partitioned. */
  storageQueue(def: TaskDefinition, queue: string, params: unknown): string {
    const partitions = this.registry.partitionsOf(queue);
    if (partitions <= 1) return queue;
    if (def.partitionBy === undefined) {
      const turn = this.turns.get(queue) ?? 0;
      this.turns.set(queue, (turn + 1) % partitions);
      return partitionQueueName(queue, turn);
    }
    const value =
      params !== null && typeof params === 'object'
        ? (params as Record<string, unknown>)[def.partitionBy]
        : undefined;
    if (value === undefined) {
      throw new JobbersError(
        'INVALID_PARAMS',
        `task "${def.name}" is partitioned by param "${def.partitionBy}", which the params lack`,
      );
    }
    return partitionQueueName(queue, partitionOfValue(value, partitions));
  }
}

/** The partition of a partitionBy value: the first 4 bytes of its SHA-1, modulo the partitions. */
export function partitionOfValue(value: unknown, partitions: number): number {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return createHash('sha1').update(text).digest().readUInt32BE(0) % partitions;
}

/**
 * Parses JOBBERS_ROLES: `role=queue1,queue2;other=queue3`. Without it, the role `default`
 * serves every queue the registered tasks use, and each queue is also a role of its own name.
 */
export function parseRoles(spec: string | undefined, registry: TaskRegistry): RoleMap {
  const roles = new Map<string, string[]>();
  if (!spec?.trim()) {
    roles.set('default', registry.queues);
    for (const queue of registry.queues) if (!roles.has(queue)) roles.set(queue, [queue]);
    return roles;
  }
  for (const entry of spec
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [role, queueList] = entry.split('=').map((s) => s?.trim());
    const queues = (queueList ?? '')
      .split(',')
      .map((q) => q.trim())
      .filter(Boolean);
    if (!role || queues.length === 0) {
      throw new JobbersError(
        'CONFIG_INVALID',
        `JOBBERS_ROLES entry "${entry}" must look like role=queue1,queue2`,
      );
    }
    for (const queue of queues) {
      if (!queueNamePattern.test(queue)) {
        throw new JobbersError(
          'CONFIG_INVALID',
          `JOBBERS_ROLES: queue "${queue}" of role "${role}" is not a valid name`,
        );
      }
      if (!registry.queues.includes(queue)) {
        throw new JobbersError(
          'CONFIG_INVALID',
          `JOBBERS_ROLES: role "${role}" names queue "${queue}" that no task uses; known queues: ${registry.queues.join(', ')}`,
        );
      }
    }
    roles.set(role, queues);
  }
  return roles;
}

export function queuesForRole(roles: RoleMap, role: string): readonly string[] {
  const queues = roles.get(role);
  if (!queues) {
    throw new JobbersError(
      'UNKNOWN_ROLE',
      `unknown worker role "${role}"; known roles: ${[...roles.keys()].join(', ')}`,
    );
  }
  return queues;
}
