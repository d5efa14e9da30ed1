// Which queues a run visits: the ones named, the registry's, or those found in Redis.
import {
  bullmqPrefix,
  isSlotPerQueue,
  queueNamePattern,
  queueOfStorage,
  type TaskRegistry,
} from '@jobbers/core';
import { Cluster, type Redis } from 'ioredis';
import type { CleanerOptions } from './options.js';

const scanCount = 1000;

/**
 * Queues that exist under the prefix: BullMQ keeps `<prefix>:<queue>:meta` (and `:id` when it numbers
 * jobs). SCAN with a MATCH pattern, a bounded COUNT per call, so a big keyspace never blocks Redis;
 * on a Redis Cluster, on every master.
 */
export async function discoverQueues(redis: Redis, prefix: string): Promise<string[]> {
  const found = new Set<string>();
  const nodes = redis instanceof Cluster ? (redis as Cluster).nodes('master') : [redis];
  // With a slot per queue, BullMQ's prefix of queue q is `<base>:{q}` (see bullmqPrefix).
  const head = isSlotPerQueue(prefix) ? bullmqPrefix(prefix, '').slice(0, -1) : `${prefix}:`;
  for (const node of nodes) await scanQueues(node, head, found);
  return [...found].sort();
}

async function scanQueues(node: Redis, head: string, found: Set<string>): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', `${head}*:[mi][ed]*`, 'COUNT', scanCount);
    cursor = next;
    for (const key of keys) {
      const suffixAt = key.lastIndexOf(':');
      const suffix = key.slice(suffixAt + 1);
      if (suffix !== 'meta' && suffix !== 'id') continue;
      const rest = key.slice(head.length, suffixAt);
      // `q}:q` with a slot per queue: the tag and the name agree.
      const tagged = /^([^}]*)\}:(.*)$/.exec(rest);
      const queue = tagged ? (tagged[1] === tagged[2] ? tagged[1]! : '') : rest;
      // A partition (`<queue>~<i>`) is cleaned as a queue of its own.
      if (queueNamePattern.test(queueOfStorage(queue)) && /^[^~]*(~\d+)?$/.test(queue)) found.add(queue);
    }
  } while (cursor !== '0');
}

export async function selectQueues(
  options: CleanerOptions,
  redis: Redis,
  registry: TaskRegistry | undefined,
): Promise<string[]> {
  // A partitioned queue is cleaned partition by partition (its storage queues).
  if (options.queues) return options.queues.flatMap((q) => registry?.storageQueues(q) ?? [q]).sort();
  if (!registry) return discoverQueues(redis, options.prefix);
  if (!options.tasks) return registry.storageQueues();
  const queues = new Set<string>();
  for (const task of options.tasks) {
    const def = registry.get(task);
    for (const queue of [def.queue, ...(def.queues ?? [])])
      for (const storage of registry.storageQueues(queue)) queues.add(storage);
  }
  return [...queues].sort();
}
