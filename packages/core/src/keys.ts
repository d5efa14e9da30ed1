// Redis key names Jobbers adds beside BullMQ's own `<prefix>:<queue>:*` keys (see bullmq/keys.ts).

export { jobKey, queueKey } from './bullmq/keys.js';

/** Jobbers bookkeeping for one queue; shares the queue's prefix so a hash tag keeps it in one slot. */
export function jobbersKey(prefix: string, queue: string, name: string): string {
  return `${prefix}:${queue}:jobbers:${name}`;
}

/** Cluster-wide metric storage (not tied to one queue). */
export function metricsKey(prefix: string, name: string): string {
  return `${prefix}:jobbers:metrics:${name}`;
}

/** A task id claimed by the submission adding it (see id-reservation.ts); not tied to one queue. */
export function idReservationKey(prefix: string, id: string): string {
  return `${prefix}:jobbers:id:${id}`;
}
