// Task ids are unique across queues: a submission claims its id atomically (no job with the id in
// any queue and no claim by another submission) before it adds the job, and drops the claim once
// the job exists. A claim left by a submitter that died before adding expires after claimTtlMs.
// Where every key shares one slot, a single task skips the claim: its id check and its add are one
// script (addUnlessTaken), which sees the claims of batches as they see its job.
import { randomUUID } from 'node:crypto';
import type { JobsOptions, Queue } from 'bullmq';
import keySlot from 'cluster-key-slot';
import { type ChainableCommander, Cluster, type Redis } from 'ioredis';
import { addJob, addJobUnlessIdTaken, bullmqConnection } from './bullmq/scripts.js';
import { idReservationKey, isSlotPerQueue, jobKey } from './keys.js';
import { scripts } from './lua/registry.js';
import { countProcessError } from './metrics/process-health.js';
import { execPerNode } from './redis.js';

/** How long a submission on a Redis Cluster with replicas waits for a replica to hold its tasks. */
export const replicaAckTimeoutMs = 500;

/** True when the master serving `key` has a replica (by the client's slot map). */
function hasReplica(connection: Redis, key: string): boolean {
  if (!(connection instanceof Cluster)) return false;
  return ((connection as Cluster).slots[keySlot(key)]?.length ?? 0) > 1;
}

/** Longer than any add takes; how long an id stays blocked when its submitter died mid-way. */
export const claimTtlMs = 10_000;

export type IdClaim =
  | { outcome: 'reserved' }
  | { outcome: 'existing'; queue: string }
  /** Another submission holds the id and is adding the task named here. */
  | { outcome: 'pending'; task: string };

/** What addUnlessTaken did: added the job (BullMQ's reply: its id or the one kept), or found the id taken. */
export type UnclaimedAdd = { outcome: 'added'; id: string } | Exclude<IdClaim, { outcome: 'reserved' }>;

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

/**
 * The token every submission of a workflow's nodes claims with. A claim already held with it (by a
 * process that died mid-submission, or one submitting the same nodes at once) is taken over: the
 * node's id and task are fixed by the workflow, so both would add the same job, which BullMQ adds
 * once, in the one queue the node routes to.
 */
export function workflowClaimToken(workflowId: string): string {
  return `workflow:${workflowId}`;
}

export class IdReservations {
  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
    private readonly queues: readonly string[],
  ) {
    scripts.claimId.define(connection);
    scripts.claimIds.define(connection);
    scripts.releaseIfHeld.define(connection);
    scripts.releaseClaims.define(connection);
  }

  /**
   * True when every queue's keys and the claims share one slot: addUnlessTaken can then add a job
   * with no claim. With a slot per queue, a submission claims its id first.
   */
  get addsUnclaimed(): boolean {
    return !isSlotPerQueue(this.prefix);
  }

  /**
   * Adds one job unless its id is taken, in one round trip and one script (see addJobUnlessIdTaken):
   * the id is looked for in every queue and among the claims, and the job added, atomically, so
   * there is no claim to make or drop. Only where addsUnclaimed.
   */
  async addUnlessTaken(entry: ClaimedJob, token?: string): Promise<UnclaimedAdd> {
    const { queue, id, task, data, opts } = entry;
    const idKeys = [idReservationKey(this.prefix, id), ...this.queues.map((q) => jobKey(this.prefix, q, id))];
    // With a token, a claim holding this submission's value (a workflow's, see workflowClaimToken)
    // is its own: taken over and dropped as the job is added.
    const own = token === undefined ? '' : JSON.stringify([token, task]);
    const added = await addJobUnlessIdTaken(
      queue,
      this.connection,
      { id, name: task, data, opts },
      idKeys,
      own,
    );
    if (added.outcome === 'added') return added;
    const taken = this.toClaim(added.reply);
    if (taken.outcome === 'reserved')
      throw new Error(`unexpected reply from the guarded add: ${added.reply}`);
    return taken;
  }

  /** A claim script's reply (claim-id.lua, claim-ids.lua, id-taken.lua) as an IdClaim. */
  private toClaim(reply: unknown): IdClaim {
    const [outcome, detail] = reply as [string, string];
    if (outcome === 'existing') return { outcome, queue: this.queues[Number(detail) - 1]! };
    if (outcome === 'pending') return { outcome, task: (JSON.parse(detail) as [string, string])[1] };
    return { outcome: 'reserved' };
  }

  /**
   * Claims each id for the task named with it, in one round trip. With a slot per queue the claim
   * and the queues' job keys live in different slots: the script then only claims, and the jobs
   * are looked for once the claims are held (no submission adds an id it has not claimed, so a job
   * found then was added before the claim, and none can be added after it).
   */
  async claim(entries: { id: string; task: string }[], token: string): Promise<IdClaim[]> {
    const claimKeysOnly = isSlotPerQueue(this.prefix);
    const claimKeys = (id: string) => {
      const keys = [idReservationKey(this.prefix, id)];
      if (!claimKeysOnly) keys.push(...this.queues.map((q) => jobKey(this.prefix, q, id)));
      return keys;
    };
    const claimValue = (task: string): [string, number] => [JSON.stringify([token, task]), claimTtlMs];
    let replies: unknown[];
    if (!claimKeysOnly) {
      // Every key in one slot: the claims are one script, not a script per id.
      replies = await scripts.claimIds.run(
        this.connection,
        entries.flatMap(({ id }) => claimKeys(id)),
        [1 + this.queues.length, claimTtlMs, ...entries.map(({ task }) => claimValue(task)[0])],
      );
    } else if (entries.length === 1) {
      // A pipeline copies every script command of the connection (BullMQ's too) when it is made:
      // for one command that costs more than the command.
      const { id, task } = entries[0]!;
      replies = [await scripts.claimId.run(this.connection, claimKeys(id), claimValue(task))];
    } else {
      replies = await execPerNode(
        this.connection,
        entries.map(({ id, task }) => ({
          key: idReservationKey(this.prefix, id),
          add: (pipeline) => scripts.claimId.queue(pipeline, claimKeys(id), claimValue(task)),
        })),
      );
    }
    const claims = replies.map((reply) => this.toClaim(reply));
    return claimKeysOnly ? this.dropClaimsOfExistingIds(entries, claims, token) : claims;
  }

  private async dropClaimsOfExistingIds(
    entries: { id: string; task: string }[],
    claims: IdClaim[],
    token: string,
  ): Promise<IdClaim[]> {
    const reserved = entries.filter((_, i) => claims[i]!.outcome === 'reserved');
    if (reserved.length === 0) return claims;
    const exists = await execPerNode(
      this.connection,
      reserved.flatMap(({ id }) =>
        this.queues.map((queue) => {
          const key = jobKey(this.prefix, queue, id);
          return { key, add: (pipeline: ChainableCommander) => pipeline.exists(key) };
        }),
      ),
    );
    const holder = new Map<string, string>();
    reserved.forEach(({ id }, i) => {
      const queue = this.queues.find((_q, j) => exists[i * this.queues.length + j] === 1);
      if (queue !== undefined) holder.set(id, queue);
    });
    if (holder.size === 0) return claims;
    await this.release(
      reserved.filter(({ id }) => holder.has(id)),
      token,
    );
    return claims.map((claim, i) => {
      const queue = holder.get(entries[i]!.id);
      return claim.outcome === 'reserved' && queue !== undefined ? { outcome: 'existing', queue } : claim;
    });
  }

  /**
   * Adds the jobs of the ids this submission claimed and drops the claims, in one round trip: the
   * jobs, once added, are the record. BullMQ's adds (see bullmq/scripts.ts) and the releases go in one
   * pipeline; a claim whose add failed is dropped too. Answers, per entry, the id BullMQ answered:
   * the entry's own, or the id of the task kept in its place when deduplication dropped it.
   */
  async addAndRelease(entries: ClaimedJob[], token: string): Promise<string[]> {
    if (entries.length === 0) return [];
    // Every queue shares this connection; BullMQ's client view of it runs BullMQ's scripts.
    const client = await bullmqConnection(entries[0]!.queue);
    if (isSlotPerQueue(this.prefix)) return this.addAndReleasePerQueue(client, entries, token);
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
      return [String(added.value)];
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
    // On a pipeline an add resolves with the pipeline: its reply (the id) is the pipeline's, in order.
    return entries.map((_, i) => String(replies![i]![1]));
  }

  /**
   * With a slot per queue: one pipeline of adds per queue, all at once, then the releases (their
   * keys are in other slots) once every add has answered, whatever its outcome. When the queue's
   * master has a replica, its pipeline ends with WAIT 1: a task is acknowledged once a replica holds
   * it too, so a master that dies right after the add loses no acknowledged task when its replica
   * takes over (after replicaAckTimeoutMs without a replica's ack it is acknowledged all the same,
   * and counted in jobbers_process_errors_total{operation="replica-ack-timeout"}).
   */
  private async addAndReleasePerQueue(client: Redis, entries: ClaimedJob[], token: string) {
    const byQueue = new Map<string, ClaimedJob[]>();
    const ids = new Map<ClaimedJob, string>();
    for (const entry of entries) {
      const group = byQueue.get(entry.queue.name);
      if (group) group.push(entry);
      else byQueue.set(entry.queue.name, [entry]);
    }
    const added = await Promise.allSettled(
      [...byQueue.values()].map(async (group) => {
        const pipeline = client.pipeline();
        const adds = Promise.allSettled(
          group.map(({ queue, id, task, data, opts }) =>
            addJob(queue, pipeline, { id, name: task, data, opts }),
          ),
        );
        const awaitReplica = hasReplica(
          this.connection,
          jobKey(this.prefix, group[0]!.queue.name, group[0]!.id),
        );
        if (awaitReplica) pipeline.call('WAIT', 1, replicaAckTimeoutMs);
        const [replies, outcomes] = await Promise.all([pipeline.exec(), adds]);
        for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
        for (const [error] of replies ?? []) if (error) throw error;
        for (const [i, entry] of group.entries()) ids.set(entry, String(replies![i]![1]));
        if (awaitReplica && replies?.at(-1)?.[1] === 0) countProcessError('replica-ack-timeout');
      }),
    );
    await this.release(entries, token);
    for (const outcome of added) if (outcome.status === 'rejected') throw outcome.reason;
    return entries.map((entry) => ids.get(entry)!);
  }

  /** Drops this submission's claims on the ids without adding anything (it found a conflict). */
  async release(entries: { id: string; task: string }[], token: string): Promise<void> {
    if (entries.length === 0) return;
    if (!isSlotPerQueue(this.prefix)) {
      await scripts.releaseClaims.run(
        this.connection,
        entries.map(({ id }) => idReservationKey(this.prefix, id)),
        entries.map(({ task }) => JSON.stringify([token, task])),
      );
      return;
    }
    await execPerNode(
      this.connection,
      entries.map(({ id, task }) => ({
        key: idReservationKey(this.prefix, id),
        add: (pipeline) =>
          scripts.releaseIfHeld.queue(
            pipeline,
            [idReservationKey(this.prefix, id)],
            [JSON.stringify([token, task])],
          ),
      })),
    );
  }

  /** Queues the release of the claims, in one script (every key is in one slot where this runs). */
  private queueReleases(
    pipeline: ChainableCommander,
    entries: { id: string; task: string }[],
    token: string,
  ) {
    scripts.releaseClaims.queue(
      pipeline,
      entries.map(({ id }) => idReservationKey(this.prefix, id)),
      entries.map(({ task }) => JSON.stringify([token, task])),
    );
  }
}
