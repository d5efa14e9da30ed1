// Cancelling a task that has not started. BullMQ's own removeJob does the removal (so the exporter
// counts `removed` and the available gauge stays exact), inside a WATCH on the job hash: every move
// to active writes that hash, so a task that starts meanwhile is never removed, nor one that started
// and finished in between.
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { bullmqConnection, queueRemoveJob } from './bullmq/scripts.js';
import { bullmqPrefix, jobbersKey } from './keys.js';
import { countProcessError } from './metrics/process-health.js';

export const cancellableStates = ['waiting', 'prioritized', 'delayed'] as const;
export type CancellableState = (typeof cancellableStates)[number];

export type CancelOutcome =
  | { outcome: 'cancelled'; previousState: CancellableState }
  | { outcome: 'not-found' }
  | { outcome: 'not-cancellable'; state: string };

/** Attempts before giving up on a task whose state keeps changing under the WATCH. */
const maxRounds = 20;

/**
 * Owns one connection of its own: WATCH state belongs to a connection, so cancellations run one at a
 * time on it and never share it with other commands.
 */
export class TaskCanceller {
  private connection?: Redis;
  private readonly queues = new Map<string, Queue>();
  private lane: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly shared: Redis,
    private readonly prefix: string,
  ) {}

  cancel(queueName: string, id: string): Promise<CancelOutcome> {
    const run = this.lane.then(() => this.cancelNow(queueName, id));
    // The lane only orders cancellations; a failed one reaches its caller through `run`.
    this.lane = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private queue(name: string): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      if (!this.connection) {
        this.connection = this.shared.duplicate();
        // A failed command reaches the caller; the shared connection logs the outage: count only.
        this.connection.on('error', () => countProcessError('cancel-connection'));
      }
      queue = new Queue(name, { connection: this.connection, prefix: bullmqPrefix(this.prefix, name) });
      queue.on('error', () => countProcessError('cancel-queue'));
      this.queues.set(name, queue);
    }
    return queue;
  }

  private async cancelNow(queueName: string, id: string): Promise<CancelOutcome> {
    const queue = this.queue(queueName);
    const client = await bullmqConnection(queue);
    for (let round = 0; round < maxRounds; round++) {
      await client.watch(queue.toKey(id));
      const state = await queue.getJobState(id);
      if (state === 'unknown' || !(cancellableStates as readonly string[]).includes(state)) {
        await client.unwatch();
        return state === 'unknown' ? { outcome: 'not-found' } : { outcome: 'not-cancellable', state };
      }
      const transaction = client.multi();
      queueRemoveJob(queue, transaction, id);
      transaction.hdel(jobbersKey(this.prefix, queueName, 'yields'), id);
      const replies = await transaction.exec();
      if (!replies) continue;
      const [removeError, code] = replies[0] ?? [];
      if (removeError) throw removeError;
      if (code === 1) return { outcome: 'cancelled', previousState: state as CancellableState };
      return { outcome: 'not-cancellable', state: 'active' };
    }
    return { outcome: 'not-cancellable', state: await queue.getJobState(id) };
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
    this.connection?.disconnect();
    this.connection = undefined;
  }
}
