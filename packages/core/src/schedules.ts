// Schedules: tasks submitted by themselves on a cron pattern (with a time zone) or every N ms, built
// on BullMQ Job Schedulers. Jobbers keeps each schedule's record (what was asked, and whether it is
// paused) in one hash; the queue's Job Scheduler exists while the schedule is not paused and makes
// one job per tick: the next tick's job is added when a worker takes the current one, with an id
// made of the schedule and the tick, so any number of managers and workers make each tick once.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobSchedulerTemplateOptions } from 'bullmq';
import { CronExpressionParser } from 'cron-parser';
import type { Redis } from 'ioredis';
import type { TaskClient } from './client.js';
import { JobbersError } from './errors.js';
import { sharedKey } from './keys.js';
import type { Logger } from './logger.js';
import { scripts } from './lua/registry.js';
import type { ScheduleView } from './schemas.js';
import { maxTimerMs, type TaskRegistry, type TaskSchedule } from './task.js';

export const scheduleIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** The shortest interval of an `every` schedule. */
export const minEveryMs = 100;
/** How long one change of a schedule may hold its lock (a holder that died frees it then). */
const lockTtlMs = 10_000;

/** What a schedule is made from: the body of POST /v1/schedules. */
export interface ScheduleInput extends TaskSchedule {
  id: string;
  task: string;
  queue?: string;
  paused?: boolean;
}

interface ScheduleRecord extends TaskSchedule {
  id: string;
  task: string;
  queue: string;
  /** The queue storing its runs (a partition for a partitioned queue). */
  storageQueue: string;
  params: unknown;
  paused: boolean;
  source: 'definition' | 'api';
}

export function schedulesKey(prefix: string): string {
  return sharedKey(prefix, 'schedules');
}

export class Schedules {
  private readonly key: string;

  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
    private readonly client: TaskClient,
  ) {
    this.key = schedulesKey(prefix);
    scripts.releaseIfHeld.define(connection);
  }

  /**
   * Runs one change of a schedule alone, across managers: BullMQ's upsert of a scheduler removes the
   * scheduler's pending run without an event when it finds one (see apply), so two changes at once
   * could drop a run the exporter counted.
   */
  private async locked<T>(id: string, change: () => Promise<T>): Promise<T> {
    const lockKey = sharedKey(this.prefix, `schedule-lock:${id}`);
    const token = randomUUID();
    const deadline = Date.now() + lockTtlMs;
    while ((await this.connection.set(lockKey, token, 'PX', lockTtlMs, 'NX')) !== 'OK') {
      if (Date.now() > deadline)
        throw new JobbersError(
          'SCHEDULE_BUSY',
          `schedule "${id}" is being changed by another request; try again`,
        );
      await sleep(20);
    }
    try {
      return await change();
    } finally {
      await scripts.releaseIfHeld.run(this.connection, [lockKey], [token]);
    }
  }

  /** Creates a schedule; 409 SCHEDULE_EXISTS when the id is taken. */
  async create(input: ScheduleInput): Promise<ScheduleView> {
    const record = this.recordOf(input, 'api');
    return this.locked(record.id, async () => {
      const created = await this.connection.hsetnx(this.key, record.id, JSON.stringify(record));
      if (created === 0)
        throw new JobbersError('SCHEDULE_EXISTS', `schedule "${record.id}" exists: PUT it to change it`);
      await this.apply(record);
      return this.view(record);
    });
  }

  /** Creates or replaces a schedule made through the API. Answers whether it was created. */
  async put(input: ScheduleInput): Promise<{ view: ScheduleView; created: boolean }> {
    const record = this.recordOf(input, 'api');
    return this.locked(record.id, async () => {
      const old = await this.read(record.id);
      if (old?.source === 'definition') throw definedInCode(record.id);
      await this.connection.hset(this.key, record.id, JSON.stringify(record));
      if (old && old.storageQueue !== record.storageQueue)
        await this.client.queue(old.storageQueue).removeJobScheduler(old.id);
      await this.apply(record);
      return { view: await this.view(record), created: !old };
    });
  }

  async get(id: string): Promise<ScheduleView> {
    return this.view(await this.mustRead(id));
  }

  async list(): Promise<ScheduleView[]> {
    const all = await this.connection.hgetall(this.key);
    const records = Object.values(all).map((raw) => JSON.parse(raw) as ScheduleRecord);
    records.sort((a, b) => a.id.localeCompare(b.id));
    return Promise.all(records.map((r) => this.view(r)));
  }

  /** Removes a schedule and its next run (a run already due or running goes on). */
  async remove(id: string): Promise<void> {
    await this.locked(id, async () => {
      const record = await this.mustRead(id);
      await this.client.queue(record.storageQueue).removeJobScheduler(record.id);
      await this.connection.hdel(this.key, record.id);
    });
  }

  /** Pauses a schedule: its next run is removed, no tick makes a run until it is resumed. */
  async setPaused(id: string, paused: boolean): Promise<ScheduleView> {
    return this.locked(id, async () => {
      const record = await this.mustRead(id);
      if (record.paused !== paused) {
        record.paused = paused;
        await this.connection.hset(this.key, record.id, JSON.stringify(record));
        await this.apply(record);
      }
      return this.view(record);
    });
  }

  /**
   * Makes the schedules of the task definitions: a new or changed one is written and its Job
   * Scheduler made again; an unchanged one is left as it is (its next run stays), keeping its pause.
   */
  async syncDefinitions(registry: TaskRegistry, logger?: Logger): Promise<void> {
    for (const def of registry.definitions) {
      if (!def.schedule) continue;
      const record = this.recordOf({ id: def.name, task: def.name, ...def.schedule }, 'definition');
      await this.locked(record.id, async () => {
        const old = await this.read(record.id);
        if (old?.source === 'api')
          throw new JobbersError(
            'TASK_DEFINITION_INVALID',
            `task "${def.name}" has a schedule, but a schedule "${def.name}" was made through the API: delete it first`,
          );
        record.paused = old?.paused ?? false;
        const changed = !old || JSON.stringify(old) !== JSON.stringify(record);
        const missing =
          !record.paused && !(await this.client.queue(record.storageQueue).getJobScheduler(record.id));
        if (!changed && !missing) return;
        await this.connection.hset(this.key, record.id, JSON.stringify(record));
        await this.apply(record);
        logger?.info({ schedule: record.id, changed }, 'schedule of a task definition made');
      });
    }
  }

  private async read(id: string): Promise<ScheduleRecord | undefined> {
    const raw = await this.connection.hget(this.key, id);
    return raw ? (JSON.parse(raw) as ScheduleRecord) : undefined;
  }

  private async mustRead(id: string): Promise<ScheduleRecord> {
    const record = await this.read(id);
    if (!record)
      throw new JobbersError('SCHEDULE_NOT_FOUND', `no schedule with id "${String(id).slice(0, 64)}"`);
    return record;
  }

  /** Validates everything about a schedule; throws INVALID_SCHEDULE (or the task's errors) on bad input. */
  private recordOf(input: ScheduleInput, source: ScheduleRecord['source']): ScheduleRecord {
    const problems = scheduleProblems(input);
    if (problems.length > 0)
      throw new JobbersError('INVALID_SCHEDULE', `invalid schedule: ${problems.join('; ')}`, problems);
    const prepared = this.client.prepare({ task: input.task, params: input.params, queue: input.queue });
    const record: ScheduleRecord = {
      id: input.id,
      task: prepared.task,
      queue: prepared.queue,
      storageQueue: prepared.storageQueue,
      params: prepared.payload.params,
      paused: input.paused ?? false,
      source,
    };
    if (input.cron !== undefined) {
      record.cron = input.cron;
      record.tz = input.tz ?? 'UTC';
    }
    if (input.every !== undefined) record.every = input.every;
    if (input.start !== undefined) record.start = new Date(input.start).toISOString();
    if (input.end !== undefined) record.end = new Date(input.end).toISOString();
    return record;
  }

  /**
   * Makes the queue's Job Scheduler match the record: removed, then made again unless paused. Removed
   * first because BullMQ's upsert of an existing scheduler deletes its pending run without writing
   * `removed` to the event stream (the exporter would keep counting it), where removeJobScheduler
   * writes it. A run already due (waiting) is left to run.
   */
  private async apply(record: ScheduleRecord): Promise<void> {
    const queue = this.client.queue(record.storageQueue);
    await queue.removeJobScheduler(record.id);
    if (record.paused) return;
    const prepared = this.client.prepare({ task: record.task, params: record.params, queue: record.queue });
    const { attempts, backoff, removeOnComplete, removeOnFail } = prepared.options;
    const opts: JobSchedulerTemplateOptions = { attempts, backoff, removeOnComplete, removeOnFail };
    await queue.upsertJobScheduler(
      record.id,
      {
        ...(record.cron !== undefined ? { pattern: record.cron, tz: record.tz } : { every: record.every }),
        ...(record.start ? { startDate: record.start } : {}),
        ...(record.end ? { endDate: record.end } : {}),
      },
      { name: record.task, data: prepared.payload, opts },
    );
  }

  private async view(record: ScheduleRecord): Promise<ScheduleView> {
    const { storageQueue: _storage, ...shown } = record;
    const view: ScheduleView = { ...shown };
    if (!record.paused) {
      const scheduler = await this.client.queue(record.storageQueue).getJobScheduler(record.id);
      if (scheduler?.next) view.next = new Date(scheduler.next).toISOString();
    }
    return view;
  }
}

function definedInCode(id: string): JobbersError {
  return new JobbersError(
    'SCHEDULE_EXISTS',
    `schedule "${id}" comes from its task's definition: change it there (the API may pause and resume it)`,
  );
}

/** What is wrong with a schedule's id, timing and bounds (its task and params are checked by TaskClient). */
export function scheduleProblems(input: ScheduleInput): string[] {
  const problems: string[] = [];
  if (typeof input.id !== 'string' || !scheduleIdPattern.test(input.id))
    problems.push('id must be 1-64 of [A-Za-z0-9_.-], starting with a letter or digit');
  if ((input.cron === undefined) === (input.every === undefined)) problems.push('give either cron or every');
  if (
    input.every !== undefined &&
    (!Number.isInteger(input.every) || input.every < minEveryMs || input.every > maxTimerMs)
  )
    problems.push(`every must be whole milliseconds ${minEveryMs}..${maxTimerMs}`);
  if (input.tz !== undefined && input.cron === undefined) problems.push('tz goes with cron');
  if (input.tz !== undefined && !isTimeZone(input.tz))
    problems.push(`tz "${String(input.tz).slice(0, 64)}" is not an IANA time zone`);
  if (input.cron !== undefined) {
    try {
      CronExpressionParser.parse(String(input.cron), { tz: input.tz ?? 'UTC' });
    } catch (error) {
      problems.push(
        `cron "${String(input.cron).slice(0, 100)}" is not a cron pattern: ${(error as Error).message}`,
      );
    }
  }
  const start = input.start === undefined ? undefined : Date.parse(input.start);
  const end = input.end === undefined ? undefined : Date.parse(input.end);
  if (start !== undefined && Number.isNaN(start)) problems.push('start must be an ISO 8601 date-time');
  if (end !== undefined && Number.isNaN(end)) problems.push('end must be an ISO 8601 date-time');
  if (start !== undefined && end !== undefined && !(start < end)) problems.push('end must be after start');
  return problems;
}

function isTimeZone(tz: unknown): boolean {
  if (typeof tz !== 'string' || tz === '') return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
