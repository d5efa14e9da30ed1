// Which worker roles serve a queue, and when each was last seen, on Redis's clock. Workers record
// their role before they activate anything and keep the record fresh; while a single role serves a
// queue, the lifecycle exporter labels activations with it instead of reading each job's `pb`.
import type { Redis } from 'ioredis';
import { jobbersKey } from '../keys.js';
import { scripts } from '../lua/registry.js';

/** A worker refreshes its record this often. */
export const roleRefreshMs = 15_000;
/** A worker records again before activating a job when its record is older than this. */
export const roleStaleMs = 30_000;
/** A role may have activated a job at time t only if it was seen at t - roleActivityWindowMs or later. */
export const roleActivityWindowMs = 60_000;

export function roleActivityKey(prefix: string, queue: string): string {
  return jobbersKey(prefix, queue, 'roles');
}

/** Records that `role` serves `queues` now (one call per queue: queues may live in different slots). */
export async function recordRoleActivity(
  redis: Redis,
  prefix: string,
  queues: readonly string[],
  role: string,
): Promise<void> {
  await Promise.all(
    queues.map((queue) => scripts.recordRoleActivity.run(redis, [roleActivityKey(prefix, queue)], [role])),
  );
}

/**
 * The one role that may have activated jobs from `sinceMs` on, or undefined when none or several
 * may have. `seen` is the role activity sorted set read WITHSCORES.
 */
export function soleActiveRole(seen: readonly string[], sinceMs: number): string | undefined {
  let sole: string | undefined;
  for (let i = 0; i < seen.length; i += 2) {
    if (Number(seen[i + 1]) < sinceMs - roleActivityWindowMs) continue;
    if (sole !== undefined) return undefined;
    sole = seen[i]!;
  }
  return sole;
}
