// Redis key names Jobbers adds beside BullMQ's own `<prefix>:<queue>:*` keys (see bullmq/keys.ts).
import { isSlotPerQueue, queueKey, slotPerQueueMarker } from './bullmq/keys.js';

export { bullmqPrefix, isSlotPerQueue, jobKey, queueKey } from './bullmq/keys.js';

/** Jobbers bookkeeping for one queue; shares the queue's prefix so a hash tag keeps it in one slot. */
export function jobbersKey(prefix: string, queue: string, name: string): string {
  return `${queueKey(prefix, queue)}:jobbers:${name}`;
}

/** The prefix of keys tied to no queue: without the slot-per-queue marker (they hash as a whole). */
function sharedPrefix(prefix: string): string {
  return isSlotPerQueue(prefix) ? prefix.slice(0, -slotPerQueueMarker.length) : prefix;
}

/**
 * A key tied to no queue that scripts and transactions use with others of its kind (metric hashes,
 * workflows, the workers' records). With a slot per queue they share one slot of their own, tagged
 * `{<prefix>}`, as every key did in the single-slot layout; otherwise they share the prefix's.
 */
export function sharedKey(prefix: string, name: string): string {
  const shared = isSlotPerQueue(prefix) ? `{${sharedPrefix(prefix)}}` : prefix;
  return `${shared}:jobbers:${name}`;
}

/** Metric storage not tied to one queue (series without a queue label). */
export function metricsKey(prefix: string, name: string): string {
  return sharedKey(prefix, `metrics:${name}`);
}

/**
 * Metric storage for one queue's series. With a slot per queue, each queue keeps its own hashes in
 * its slot (the exporter writes them in the same script as the queue's bookkeeping) and readers
 * merge them; otherwise every queue shares the hashes of metricsKey.
 */
export function queueMetricsKey(prefix: string, queue: string, name: string): string {
  return isSlotPerQueue(prefix) ? jobbersKey(prefix, queue, `metrics:${name}`) : metricsKey(prefix, name);
}

/**
 * A task id claimed by the submission adding it (see id-reservation.ts); not tied to one queue. Each
 * claim is used alone, so with a slot per queue the claims spread over the masters.
 */
export function idReservationKey(prefix: string, id: string): string {
  return `${sharedPrefix(prefix)}:jobbers:id:${id}`;
}
