// One cleaner run: page through each queue's state sets, keep the tasks that match the filters,
// remove them through BullMQ, count them in Redis-aggregated metrics.
import {
  bullmqPrefix,
  clusterMetrics,
  countProcessError,
  jobbersKey,
  jobHashField,
  jobKey,
  MetricsBuffer,
  type MetricsFlushLogger,
  metricHashKey,
  queueOfStorage,
} from '@jobbers/core';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { type CleanerOptions, type CleanerState, submissionCutoffMs } from './options.js';
import { dropDanglingIds, type RemovalOutcome, removeJobs } from './removal.js';
import { type CleanerReport, Tally } from './report.js';
import { type JobSource, readPage, sourcesFor } from './sources.js';

/** Flush intervals the final metrics flush keeps retrying for (10 s by default) before the run reports it. */
export const finalFlushRetryIntervals = 10;

/** Ids read per round; each round is a handful of short pipelined calls. */
export const defaultPageSize = 500;

export interface CleanerProgress {
  queue: string;
  state: CleanerState;
  scanned: number;
  matched: number;
  removed: number;
}

export interface CleanerRunContext {
  redis: Redis;
  queues: string[];
  pageSize?: number;
  /** Aborting stops the run after the batch in progress. */
  signal?: AbortSignal;
  onProgress?: (progress: CleanerProgress) => void;
  /** Where a metrics flush failure streak is logged. */
  logger?: MetricsFlushLogger;
}

/** A run that failed part way; report says what it had removed by then. */
export class CleanerRunError extends Error {
  constructor(
    message: string,
    readonly report: CleanerReport,
    override readonly cause: unknown,
  ) {
    super(message);
    this.name = 'CleanerRunError';
  }
}

interface Candidate {
  id: string;
  task: string;
}

export async function runCleaner(
  options: CleanerOptions,
  context: CleanerRunContext,
): Promise<CleanerReport> {
  return new CleanerRun(options, context).run();
}

/** Records the end of a successful run for jobbers_cleaner_last_success_timestamp_seconds. */
export async function recordCleanerSuccess(redis: Redis, prefix: string, atMs: number): Promise<void> {
  await redis.hset(metricHashKey(prefix, clusterMetrics.cleanerLastSuccess), '', Math.floor(atMs / 1000));
}

class CleanerRun {
  private readonly startedAtMs = Date.now();
  private readonly cutoffMs: number | undefined;
  private readonly pageSize: number;
  private readonly matched = new Tally();
  private readonly removed = new Tally();
  private readonly skipped = { active: 0, gone: 0, kept: 0 };
  private scanned = 0;
  private interrupted = false;
  private metrics: MetricsBuffer | undefined;
  private metricsUnwritten = false;

  constructor(
    private readonly options: CleanerOptions,
    private readonly context: CleanerRunContext,
  ) {
    this.cutoffMs = submissionCutoffMs(options, this.startedAtMs);
    this.pageSize = context.pageSize ?? defaultPageSize;
  }

  async run(): Promise<CleanerReport> {
    const { redis } = this.context;
    if (!this.options.dryRun)
      this.metrics = new MetricsBuffer(redis, this.options.prefix, {
        flushMs: this.options.metricsFlushMs,
        logger: this.context.logger,
      }).start();
    let failure: unknown;
    try {
      for (const queue of this.context.queues) {
        if (this.shouldStop()) break;
        await this.cleanQueue(queue);
      }
    } catch (error) {
      failure = error;
    }
    try {
      const retryMs = finalFlushRetryIntervals * this.options.metricsFlushMs;
      if (this.metrics && !(await this.metrics.close(retryMs))) {
        this.metricsUnwritten = true;
        failure ??= new Error(
          `could not write the removal counts to Redis within ${retryMs} ms; the tasks were removed but jobbers_cleaner_removed_total misses them`,
        );
      }
      if (!failure && !this.options.dryRun && !this.interrupted) {
        await recordCleanerSuccess(redis, this.options.prefix, Date.now());
      }
    } catch (error) {
      failure ??= error;
    }
    const report = this.report();
    if (failure) {
      const message = (failure as Error).message ?? String(failure);
      report.error = { message };
      throw new CleanerRunError(message, report, failure);
    }
    return report;
  }

  private shouldStop(): boolean {
    if (this.context.signal?.aborted) this.interrupted = true;
    return this.interrupted || this.room() === 0;
  }

  /** How many more tasks --limit allows: removals, or matches in a dry run. */
  private room(): number {
    const { limit, dryRun } = this.options;
    if (limit === undefined) return Number.POSITIVE_INFINITY;
    return Math.max(0, limit - (dryRun ? this.matched.total : this.removed.total));
  }

  private async cleanQueue(queueName: string): Promise<void> {
    const queue = new Queue(queueName, {
      connection: this.context.redis,
      prefix: bullmqPrefix(this.options.prefix, queueName),
      skipVersionCheck: true,
    });
    // BullMQ repeats here the errors of the run's connection, which the CLI reports: count only.
    queue.on('error', () => countProcessError('queue-connection'));
    try {
      for (const state of this.options.states) {
        for (const source of sourcesFor(this.options.prefix, queueName, state, this.startedAtMs)) {
          await this.cleanSource(queue, source);
          if (this.shouldStop()) return;
        }
      }
    } finally {
      await queue.close();
    }
  }

  private async cleanSource(queue: Queue, source: JobSource): Promise<void> {
    let start = 0;
    for (;;) {
      if (this.shouldStop()) return;
      const page = await readPage(this.context.redis, source, start, this.pageSize);
      this.scanned += page.ids.length;
      const { matching, vanished } = await this.examine(queue.name, page.ids);
      const candidates = this.takeWithinLimit(matching);
      for (const c of candidates) this.matched.add(queue.name, c.task, source.state);
      const leftSource = this.options.dryRun
        ? 0
        : (await this.remove(queue, source.state, candidates, page.inFlight)) +
          (await this.dropDangling(queue.name, source, vanished, page.inFlight));
      start += page.ids.length - leftSource;
      this.context.onProgress?.({
        queue: queue.name,
        state: source.state,
        scanned: this.scanned,
        matched: this.matched.total,
        removed: this.removed.total,
      });
      if (page.last) return;
    }
  }

  /**
   * Splits a page into the tasks that pass --task and the submission-time limit (in page order) and
   * the ids whose job hash is gone: removed by someone else since the page was read, or left behind.
   */
  private async examine(
    queue: string,
    ids: string[],
  ): Promise<{ matching: Candidate[]; vanished: string[] }> {
    const matching: Candidate[] = [];
    const vanished: string[] = [];
    if (ids.length === 0) return { matching, vanished };
    const pipeline = this.context.redis.pipeline();
    for (const id of ids)
      pipeline.hmget(jobKey(this.options.prefix, queue, id), jobHashField.name, jobHashField.timestamp);
    const replies = (await pipeline.exec()) ?? [];
    const tasks = this.options.tasks;
    ids.forEach((id, i) => {
      const [error, fields] = replies[i] ?? [];
      if (error) throw error;
      const [task, timestamp] = (fields as (string | null)[] | undefined) ?? [];
      if (!task) vanished.push(id);
      else if (tasks && !tasks.includes(task)) return;
      else if (this.cutoffMs !== undefined && !(Number(timestamp) < this.cutoffMs)) return;
      else matching.push({ id, task });
    });
    return { matching, vanished };
  }

  private takeWithinLimit(candidates: Candidate[]): Candidate[] {
    const room = this.room();
    return candidates.length > room ? candidates.slice(0, room) : candidates;
  }

  /** Removes the candidates; returns how many of them left the source (removed, activated or gone). */
  private async remove(
    queue: Queue,
    state: CleanerState,
    candidates: Candidate[],
    inFlight: number,
  ): Promise<number> {
    const outcomes = await removeJobs(
      queue,
      candidates.map((c) => c.id),
      inFlight,
    );
    const removedIds: string[] = [];
    const removedByTask = new Map<string, number>();
    outcomes.forEach((outcome: RemovalOutcome, i) => {
      const { id, task } = candidates[i]!;
      if (outcome !== 'removed') {
        this.skipped[outcome]++;
        return;
      }
      removedIds.push(id);
      removedByTask.set(task, (removedByTask.get(task) ?? 0) + 1);
    });
    for (const [task, count] of removedByTask) {
      this.removed.add(queue.name, task, state, count);
      this.metrics?.increment(
        clusterMetrics.cleanerRemoved,
        [queueOfStorage(queue.name), task, state],
        count,
      );
    }
    if (removedIds.length > 0) {
      await this.context.redis.hdel(jobbersKey(this.options.prefix, queue.name, 'yields'), ...removedIds);
    }
    return outcomes.filter((o) => o !== 'kept').length;
  }

  /**
   * Ids whose job vanished after the page was read (another remover got there first) are dropped
   * from the source if still there, so the page arithmetic stays exact; returns how many left it.
   */
  private async dropDangling(
    queue: string,
    source: JobSource,
    ids: string[],
    inFlight: number,
  ): Promise<number> {
    const left = await dropDanglingIds(
      this.context.redis,
      source,
      (id) => jobKey(this.options.prefix, queue, id),
      ids,
      inFlight,
    );
    this.skipped.gone += left.filter(Boolean).length;
    return left.filter(Boolean).length;
  }

  private report(): CleanerReport {
    const durationMs = Date.now() - this.startedAtMs;
    const done = this.options.dryRun ? this.matched.total : this.removed.total;
    return {
      dryRun: this.options.dryRun,
      filters: {
        queues: this.options.queues ?? null,
        tasks: this.options.tasks ?? null,
        states: this.options.states,
        submittedBefore: this.cutoffMs === undefined ? null : new Date(this.cutoffMs).toISOString(),
        limit: this.options.limit ?? null,
      },
      queues: this.context.queues,
      scanned: this.scanned,
      matched: this.matched.toJSON(),
      removed: this.removed.toJSON(),
      skipped: { ...this.skipped },
      limitReached: this.room() === 0,
      interrupted: this.interrupted,
      startedAt: new Date(this.startedAtMs).toISOString(),
      durationMs,
      jobsPerSecond: durationMs > 0 ? Math.round((done / durationMs) * 1000) : done,
      metricsWritten: !this.metricsUnwritten,
    };
  }
}
