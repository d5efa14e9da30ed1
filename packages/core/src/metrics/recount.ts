// Rebuilds one queue's lifecycle bookkeeping from BullMQ's own lists, in bounded chunks, into
// keys under a recount prefix that the exporter then swaps into place.
import type { Redis } from 'ioredis';
import { jobbersKey, queueKey } from '../keys.js';

export interface RecountResult {
  /** The stream's newest id read before counting began: events after it are replayed on top. */
  streamPos: string;
  /** How many entries the stream had ever had at streamPos. */
  streamAdded: number;
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

async function unlinkMatching(redis: Redis, pattern: string) {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length > 0) await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}

export async function recountQueue(redis: Redis, prefix: string, queue: string): Promise<RecountResult> {
  const qp = `${queueKey(prefix, queue)}:`;
  const rp = jobbersKey(prefix, queue, 'recount:');
  const { streamPos, streamAdded } = await streamHead(redis, `${qp}events`);
  await unlinkMatching(redis, `${rp}*`);
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
  for (const source of sources) {
    for await (const page of ids(redis, source)) {
      const read = redis.pipeline();
      for (const id of page)
        read.hmget(`${qp}${id}`, 'name', 'timestamp', 'delay', 'processedOn', 'finishedOn');
      const replies = (await read.exec()) ?? [];
      const write = redis.pipeline();
      page.forEach((id, i) => {
        const [name, timestamp, delay, processedOn, finishedOn] = (
          (replies[i]?.[1] as (string | null)[]) ?? []
        ).map((v) => v ?? '');
        if (!name) return;
        tasks.add(name);
        write.hset(`${rp}idx`, id, `${source.state}|${name}`);
        if (source.state === 'w') {
          available++;
          const since = Math.max(Number(timestamp) + Number(delay || 0), Number(finishedOn || 0));
          write.zadd(`${rp}avail:${name}`, since, id);
        } else if (source.state === 'a') {
          write.zadd(`${rp}running:${name}`, Number(processedOn || timestamp), id);
        } else if (source.state === 'f') {
          write.zadd(`${rp}incidents:${name}`, Number(finishedOn || timestamp), id);
        }
      });
      await write.exec();
    }
  }
  return { streamPos, streamAdded, recountPrefix: rp, tasks: [...tasks], available };
}
