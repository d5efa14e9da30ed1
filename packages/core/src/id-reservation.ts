// Task ids are unique across queues: a submission claims its id atomically (no job with the id in
// any queue and no claim by another submission) before it adds the job, and drops the claim once
// the job exists. A claim left by a submitter that died before adding expires after claimTtlMs.
import { randomUUID } from 'node:crypto';
import type { JobsOptions, Queue } from 'bullmq';
import type { ChainableCommander, Redis } from 'ioredis';
import { addJob, bullmqConnection } from './bullmq/scripts.js';
import { idReservationKey, jobKey } from './keys.js';
import { scripts } from './lua/registry.js';

/** Longer than any add takes; how long an id stays blocked when its submitter died mid-way. */
export const claimTtlMs = 10_000;

export type IdClaim =
  | { outcome: 'reserved' }
  | { outcome: 'existing'; queue: string }
  /** Another submission holds the id and is adding the task named here. */
  | { outcome: 'pending'; task: string };

/** A job to add for a claimed id. */
export interface ClaimedJob {
  queue: Queue;
  id: string;
  task: string;
  data: unknown;
  opts: JobsOptions;
}

/** Identifies one submission's claims, so its release never drops another's. */
export function newClaimToken(): string {
  return randomUUID();
}

export class IdReservations {
  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
    private readonly queues: readonly string[],
  ) {
    scripts.claimId.define(connection);
    scripts.releaseIfHeld.define(connection);
  }

  /** Claims each id for the task named with it, in one round trip. */
  async claim(entries: { id: string; task: string }[], token: string): Promise<IdClaim[]> {
    const claimKeys = (id: string) => [
      idReservationKey(this.prefix, id),
      ...this.queues.map((q) => jobKey(this.prefix, q, id)),
    ];
    const claimValue = (task: string): [string, number] => [JSON.stringify([token, task]), claimTtlMs];
    let replies: [Error | null, unknown][];
    if (entries.length === 1) {
      // A pipeline copies every script command of the connection (BullMQ's too) when it is made:
      // for one command that costs more than the command.
      const { id, task } = entries[0]!;
      replies = [[null, await scripts.claimId.run(this.connection, claimKeys(id), claimValue(task))]];
    } else {
      const pipeline = this.connection.pipeline();
      for (const { id, task } of entries) scripts.claimId.queue(pipeline, claimKeys(id), claimValue(task));
      replies = (await pipeline.exec()) ?? [];
    }
    return replies.map(([error, reply]) => {
      if (error) throw error;
      const [outcome, detail] = reply as [string, string];
      if (outcome === 'existing') return { outcome, queue: this.queues[Number(detail) - 1]! };
      if (outcome === 'pending') return { outcome, task: (JSON.parse(detail) as [string, string])[1] };
      return { outcome: 'reserved' };
    });
  }

  /**
   * Adds the jobs of the ids this submission claimed and drops the claims, in one round trip: the
   * jobs, once added, are the record. BullMQ's adds (see bullmq/scripts.ts) and the releases go in one
   * pipeline; a claim whose add failed is dropped too.
   */
  async addAndRelease(entries: ClaimedJob[], token: string): Promise<void> {
    if (entries.length === 0) return;
    // Every queue shares this connection; BullMQ's client view of it runs BullMQ's scripts.
    const client = await bullmqConnection(entries[0]!.queue);
    if (entries.length === 1) {
      // No pipeline for one job (see claim): the two commands are sent at once all the same, in
      // order on the one connection, so the claim is dropped after the add whatever its outcome.
      const { queue, id, task, data, opts } = entries[0]!;
      const [added, released] = await Promise.allSettled([
        addJob(queue, client, { id, name: task, data, opts }),
        scripts.releaseIfHeld.run(
          client,
          [idReservationKey(this.prefix, id)],
          [JSON.stringify([token, task])],
        ),
      ]);
      if (added.status === 'rejected') throw added.reason;
      if (released.status === 'rejected') throw released.reason;
      return;
    }
    const pipeline = client.pipeline();
    // An add BullMQ could not build never reached the pipeline: its rejection is the only trace.
    const adds = Promise.allSettled(
      entries.map(({ queue, id, task, data, opts }) =>
        addJob(queue, pipeline, { id, name: task, data, opts }),
      ),
    );
    this.queueReleases(pipeline, entries, token);
    const [replies, added] = await Promise.all([pipeline.exec(), adds]);
    for (const outcome of added) if (outcome.status === 'rejected') throw outcome.reason;
    for (const [error] of replies ?? []) if (error) throw error;
  }

  /** Drops this submission's claims on the ids without adding anything (it found a conflict). */
  async release(entries: { id: string; task: string }[], token: string): Promise<void> {
    if (entries.length === 0) return;
    const pipeline = this.connection.pipeline();
    this.queueReleases(pipeline, entries, token);
    for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
  }

  private queueReleases(
    pipeline: ChainableCommander,
    entries: { id: string; task: string }[],
    token: string,
  ) {
    for (const { id, task } of entries) {
      scripts.releaseIfHeld.queue(
        pipeline,
        [idReservationKey(this.prefix, id)],
        [JSON.stringify([token, task])],
      );
    }
  }
}
