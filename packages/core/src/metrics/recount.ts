// Rebuilds one queue's lifecycle bookkeeping from BullMQ's own lists, in bounded chunks, into
// keys under a recount prefix that the exporter then swaps into place.
import type { Redis } from 'ioredis';
import { jobbersKey, queueKey } from '../keys.js';

export interface RecountResult {
  /** The stream's newest id read before counting began: events after it are replayed on top. */
  streamPos: string;
  /** How many entries the stream had ever had at streamPos. */
  streamAdded: number;
  /** The stream's newest id once the count was done: a job added later cannot be in the count. */
  countedUntil: string;
  recountPrefix: string;
  tasks: string[];
  available: number;
}

const chunk = 1000;

type Source = { kind: 'list' | 'zset'; key: string; state: 'w' | 'a' | 'd' | 'f' };

async function* ids(redis: Redis, source: Source): AsyncGenerator<string[]> {
  for (let start = 0; ; start += chunk) {
    const page =
      source.kind === 'list'
        ? await redis.lrange(source.key, start, start + chunk - 1)
        : await redis.zrange(source.key, start, start + chunk - 1);
    if (page.length > 0) yield page;
    if (page.length < chunk) return;
  }
}

async function streamHead(redis: Redis, stream: string): Promise<{ streamPos: string; streamAdded: number }> {
  try {
    const info = (await redis.xinfo('STREAM', stream)) as unknown[];
    const value = (name: string) => info[info.indexOf(name) + 1];
    return { streamPos: String(value('last-generated-id')), streamAdded: Number(value('entries-added')) };
  } catch (error) {
    if (/no such key/i.test((error as Error).message)) return { streamPos: '0-0', streamAdded: 0 };
    throw error;
  }
}

/** Temporary keys of a recount are listed in `<recount prefix>keys`, so a crashed one can be cleared without SCAN. */
async function clearRecountKeys(redis: Redis, rp: string) {
  const keys = await redis.smembers(`${rp}keys`);
  for (let i = 0; i < keys.length; i += 500) await redis.unlink(...keys.slice(i, i + 500));
  await redis.unlink(`${rp}keys`);
}

export async function recountQueue(redis: Redis, prefix: string, queue: string): Promise<RecountResult> {
  const qp = `${queueKey(prefix, queue)}:`;
  const rp = jobbersKey(prefix, queue, 'recount:');
  const { streamPos, streamAdded } = await streamHead(redis, `${qp}events`);
  await clearRecountKeys(redis, rp);
  const sources: Source[] = [
    { kind: 'list', key: `${qp}wait`, state: 'w' },
    { kind: 'list', key: `${qp}paused`, state: 'w' },
    { kind: 'zset', key: `${qp}prioritized`, state: 'w' },
    { kind: 'list', key: `${qp}active`, state: 'a' },
    { kind: 'zset', key: `${qp}delayed`, state: 'd' },
    { kind: 'zset', key: `${qp}waiting-children`, state: 'd' },
    { kind: 'zset', key: `${qp}failed`, state: 'f' },
  ];
  const tasks = new Set<string>();
  let available = 0;
  // The lists are read one after another while jobs keep moving, so a job may be seen twice (in
  // wait, then in active). The later sighting is the newer: the job is kept in that set only.
  const setOf = new Map<string, string>();
  for (const source of sources) {
    for await (const page of ids(redis, source)) {
      const read = redis.pipeline();
      for (const id of page)
        read.hmget(`${qp}${id}`, 'name', 'timestamp', 'delay', 'processedOn', 'finishedOn');
      const replies = (await read.exec()) ?? [];
      const write = redis.pipeline();
      const written = new Set<string>();
      page.forEach((id, i) => {
        const [name, timestamp, delay, processedOn, finishedOn] = (
          (replies[i]?.[1] as (string | null)[]) ?? []
        ).map((v) => v ?? '');
        if (!name) return;
        tasks.add(name);
        const earlier = setOf.get(id);
        if (earlier) {
          write.zrem(earlier, id);
          if (earlier.startsWith(`${rp}avail:`)) available--;
        }
        setOf.set(id, '');
        write.hset(`${rp}idx`, id, `${source.state}|${name}`);
        written.add(`${rp}idx`);
        if (source.state === 'w') {
          available++;
          const since = Math.max(Number(timestamp) + Number(delay || 0), Number(finishedOn || 0));
          write.zadd(`${rp}avail:${name}`, since, id);
          written.add(`${rp}avail:${name}`);
          setOf.set(id, `${rp}avail:${name}`);
        } else if (source.state === 'a') {
          write.zadd(`${rp}running:${name}`, Number(processedOn || timestamp), id);
          written.add(`${rp}running:${name}`);
          setOf.set(id, `${rp}running:${name}`);
        } else if (source.state === 'f') {
          write.zadd(`${rp}incidents:${name}`, Number(finishedOn || timestamp), id);
          written.add(`${rp}incidents:${name}`);
          setOf.set(id, `${rp}incidents:${name}`);
        }
      });
      if (written.size > 0) write.sadd(`${rp}keys`, ...written);
      await write.exec();
    }
  }
  const { streamPos: countedUntil } = await streamHead(redis, `${qp}events`);
  return { streamPos, streamAdded, countedUntil, recountPrefix: rp, tasks: [...tasks], available };
}
