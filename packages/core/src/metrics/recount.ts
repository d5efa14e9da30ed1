// Rebuilds one queue's lifecycle bookkeeping from BullMQ's own lists into keys under a recount
// prefix, which the exporter then swaps into place. The counting runs inside Redis, a bounded
// slice per script call (no job id travels to the exporter, whose memory stays the same whatever
// the backlog), and where it stands is kept in Redis with the leader's token: a recount that a
// leader left unfinished (it stopped, crashed or lost its lease) is resumed by the next one, and
// every write is refused unless the caller holds the leader lock.
import type { Redis } from 'ioredis';
import { jobHashField } from '../bullmq/job-hash.js';
import { jobbersKey, queueKey } from '../keys.js';
import { scripts } from '../lua/registry.js';

export function recountPrefix(prefix: string, queue: string): string {
  return jobbersKey(prefix, queue, 'recount:');
}

/** Present while a recount of the queue runs (or waits to be resumed by the next leader). */
export function recountProgressKey(prefix: string, queue: string): string {
  return `${recountPrefix(prefix, queue)}progress`;
}

/** Jobs counted per script call: 10-20 ms of Redis's time, so Redis never blocks for long. */
export const recountChunkSize = 5000;

export interface RecountKeys {
  prefix: string;
  queue: string;
  leaderKey: string;
  stateKey: string;
  /** The leader's token: every write is checked against the leader lock. */
  token: string;
  leaseMs: number;
}

/** Where the replay of a recount stands: the stream position it has applied up to. */
export interface RecountPosition {
  pos: string;
  added: number;
}

export class QueueRecount {
  readonly bookkeepingPrefix: string;
  readonly progressKey: string;
  private readonly qp: string;
  private readonly stream: string;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RecountKeys,
  ) {
    this.bookkeepingPrefix = recountPrefix(keys.prefix, keys.queue);
    this.progressKey = recountProgressKey(keys.prefix, keys.queue);
    this.qp = `${queueKey(keys.prefix, keys.queue)}:`;
    this.stream = `${this.qp}events`;
  }

  /**
   * Starts a recount from the stream's head now, or (unless `restart`) adopts the one in progress.
   * Answers whether it resumed, and undefined when the caller does not lead.
   */
  async begin(restart = false): Promise<'started' | 'resumed' | undefined> {
    const { streamPos, streamAdded } = await streamHead(this.redis, this.stream);
    const begun = await scripts.recountBegin.run(
      this.redis,
      [this.progressKey, this.keys.leaderKey],
      [this.keys.token, this.bookkeepingPrefix, streamPos, streamAdded, restart ? '1' : '0'],
    );
    if (begun === -1) return undefined;
    return begun === 1 ? 'started' : 'resumed';
  }

  /** The position the recount's replay stands at. */
  async position(): Promise<RecountPosition | undefined> {
    const [pos, added] = await this.redis.hmget(this.progressKey, 'pos', 'added');
    return pos === null ? undefined : { pos, added: Number(added ?? 0) };
  }

  /**
   * Counts the next slice (renewing the lease); 'done' once every list is read. `moved`: jobs found
   * elsewhere than the recount's index said, whatever the replay remembers of them is stale.
   */
  async countChunk(): Promise<{ status: 'counted' | 'done'; moved: string[] } | 'not-leader'> {
    const reply = await scripts.recountChunk.run(
      this.redis,
      [this.progressKey, this.keys.leaderKey, this.stream],
      [
        this.keys.token,
        this.qp,
        this.bookkeepingPrefix,
        recountChunkSize,
        this.keys.leaseMs,
        jobHashField.rateLimitedUntil,
      ],
    );
    if (!Array.isArray(reply)) return 'not-leader';
    return { status: reply[1] === 1 ? 'done' : 'counted', moved: reply[2] ? reply[2].split('\0') : [] };
  }

  /** Puts the counted bookkeeping in place of the live one; false when the caller does not lead. */
  async swap(): Promise<boolean> {
    const swapped = await scripts.recountSwap.run(
      this.redis,
      [this.keys.stateKey, this.keys.leaderKey, this.progressKey],
      [this.keys.token, jobbersKey(this.keys.prefix, this.keys.queue, ''), this.bookkeepingPrefix],
    );
    return swapped === 1;
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
