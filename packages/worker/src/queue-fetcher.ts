// Takes jobs from one queue into the worker, one at a time, only when there is room to run them.
//
// BullMQ's own run loop cannot honour a limit shared by several queues: a Worker blocked in BZPOPMIN
// on an empty queue, or fetching the next job in the call that finishes one, activates a job whether
// or not the process has room. So each queue's BullMQ Worker runs in manual mode and this loop
// decides when to take a job:
//   - busy (the queue had work last time): reserve a process-wide slot first (first come, first
//     served across queues), then take a job without blocking; none -> hand the slot back, go idle.
//   - idle (the queue looked empty): wait for new work in BZPOPMIN *without* holding a slot (a slot
//     held while blocked would starve the other queues); when a job comes, take a slot if one is
//     free, else give the job straight back (a `yielded` transition, once per idle -> busy switch).
// No job is ever active here without a slot to run in, and no slot is ever held while blocked.
import { countProcessError, type JobPayload, type Logger } from '@jobbers/core';
import type { Job, Worker } from 'bullmq';
import type { CapacityGate, QueueSlots } from './capacity.js';

export interface FetchedJob {
  job: Job<JobPayload>;
  token: string;
}

export interface QueueFetcherOptions {
  queue: string;
  bull: Worker<JobPayload>;
  gate: CapacityGate;
  slots: QueueSlots;
  logger: Logger;
  /** A job now holds a slot of the gate and of the queue: run it (without waiting for it). */
  start(fetched: FetchedJob): void;
  /** A job was taken that cannot run here: give it back at once. */
  giveBack(fetched: FetchedJob): Promise<void>;
  /** Whether the worker still takes work. */
  accepting(): boolean;
}

const errorPauseMs = 1000;
/**
 * How long a blocking wait for work may last before it counts as stuck. BullMQ bounds the wait to
 * its drain delay (a second here) plus a watchdog; a Redis Cluster master lost mid-wait can still
 * leave it unsettled, and the queue would be followed no more.
 */
export const stuckWaitMs = 15_000;

export class QueueFetcher {
  private tokens = 0;
  private idle = false;
  private loop: Promise<void> | undefined;
  /** A blocking wait that outlived stuckWaitMs and has not settled yet: poll without blocking meanwhile. */
  private stuckWait: Promise<unknown> | undefined;

  constructor(private readonly options: QueueFetcherOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** Resolves once the loop has stopped and any job it held is given back or started. */
  get done(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  private async run(): Promise<void> {
    const { gate, slots, accepting } = this.options;
    while (accepting()) {
      await slots.whenFree();
      if (!accepting()) break;
      if (this.idle) await this.waitForWork();
      else if (!slots.tryReserve()) continue;
      else if (!(await gate.reserve())) {
        slots.cancel();
        break;
      } else await this.takeReserved();
    }
  }

  private async takeReserved(): Promise<void> {
    const { gate, slots } = this.options;
    const fetched = await this.fetch(false);
    if (!fetched) {
      gate.cancel();
      slots.cancel();
      this.idle = true;
      return;
    }
    gate.commit();
    slots.commit();
    if (!this.options.accepting()) {
      await this.release(fetched);
      return;
    }
    this.options.start(fetched);
  }

  private async waitForWork(): Promise<void> {
    const { gate, slots, accepting } = this.options;
    const fetched = this.stuckWait ? await this.poll() : await this.fetch(true);
    if (!fetched) return;
    this.idle = false;
    const slot = accepting() && slots.tryTake();
    if (!slot || !gate.tryTake()) {
      if (slot) slots.release();
      this.options.logger.debug({ taskId: fetched.job.id }, 'no free slot for a new job: giving it back');
      await this.options.giveBack(fetched);
      return;
    }
    this.options.start(fetched);
  }

  /** A job taken into a slot while the worker began to stop: gives it back and frees the slots. */
  private async release(fetched: FetchedJob): Promise<void> {
    try {
      await this.options.giveBack(fetched);
    } finally {
      this.options.slots.release();
      this.options.gate.release();
    }
  }

  /** While a blocking wait is stuck: one fetch without blocking, after a pause when it finds nothing. */
  private async poll(): Promise<FetchedJob | undefined> {
    const fetched = await this.fetch(false);
    if (!fetched && this.options.accepting())
      await new Promise((resolve) => setTimeout(resolve, errorPauseMs));
    return fetched;
  }

  private async fetch(block: boolean): Promise<FetchedJob | undefined> {
    const { bull, logger, queue } = this.options;
    const token = `${bull.id}:${this.tokens++}`;
    try {
      const next = bull.getNextJob(token, { block });
      const job = block ? await this.unlessStuck(next, token) : await next;
      return job ? { job, token } : undefined;
    } catch (error) {
      if (!this.options.accepting()) return undefined;
      countProcessError('fetch-job');
      logger.error({ err: error, queue }, 'could not take a job; retrying');
      await new Promise((resolve) => setTimeout(resolve, errorPauseMs));
      return undefined;
    }
  }

  /**
   * The blocking wait's job, or undefined once it has lasted stuckWaitMs: the queue is then polled
   * until the wait settles, and a job it activates late is given back (nothing runs it here).
   */
  private async unlessStuck(
    next: Promise<Job<JobPayload> | undefined>,
    token: string,
  ): Promise<Job<JobPayload> | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<'stuck'>((resolve) => {
      timer = setTimeout(() => resolve('stuck'), stuckWaitMs);
    });
    try {
      const outcome = await Promise.race([next, stuck]);
      if (outcome !== 'stuck') return outcome;
    } finally {
      clearTimeout(timer);
    }
    const { logger, queue } = this.options;
    countProcessError('fetch-stuck');
    logger.warn({ queue, waitedMs: stuckWaitMs }, 'waiting for work is stuck; polling the queue meanwhile');
    this.stuckWait = next
      .then(async (job) => {
        if (job) await this.options.giveBack({ job, token });
      })
      .catch((error: unknown) => logger.warn({ err: error, queue }, 'a stuck wait for work failed'))
      .finally(() => {
        this.stuckWait = undefined;
      });
    return undefined;
  }
}
