// Rate limits per task type (and per value of one of its params): the option's syntax, and the
// admission of a start, counted in Redis so every worker of every process shares one budget.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { parseDurationMs } from './durations.js';
import { jobbersKey } from './keys.js';
import { scripts } from './lua/registry.js';

export interface RateLimitOption {
  /** Starts admitted per window: a whole number >= 1. */
  max: number;
  /** The window: milliseconds, or a duration with its unit (`'500ms'`, `'1s'`, `'1m'`, `'1h'`). */
  per: number | string;
  /** A param whose value has a budget of its own (tasks without it share one budget). */
  key?: string;
}

/** A rate limit as enforced: the window in milliseconds. */
export interface RateLimit {
  max: number;
  perMs: number;
  key?: string;
}

/** The most starts a window may admit: the log holds one entry per start of the window. */
export const maxRateLimitStarts = 100_000;
/** The longest window: 1 day. */
export const maxRateLimitWindowMs = 86_400_000;

/**
 * What is wrong with a rateLimit option (empty when nothing is). A key must be one of the params the
 * schema lists, when it lists them (`properties`).
 */
export function rateLimitProblems(option: unknown, params?: Record<string, unknown>): string[] {
  if (typeof option !== 'object' || option === null || Array.isArray(option))
    return ['rateLimit must be an object {max, per, key?}'];
  const { max, per, key, ...rest } = option as Record<string, unknown>;
  const problems: string[] = [];
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    problems.push(`rateLimit has unknown option(s) ${unknown.join(', ')}: it takes max, per and key`);
  if (!Number.isInteger(max) || (max as number) < 1 || (max as number) > maxRateLimitStarts)
    problems.push(
      `rateLimit.max must be a whole number 1..${maxRateLimitStarts} (got ${JSON.stringify(max)})`,
    );
  const perMs = windowMs(per);
  if (perMs === undefined || perMs < 1 || perMs > maxRateLimitWindowMs)
    problems.push(
      `rateLimit.per must be 1 ms..1 day, as milliseconds or with a unit ('500ms', '1s', '1m', '1h') (got ${JSON.stringify(per)})`,
    );
  if (key !== undefined && (typeof key !== 'string' || key === ''))
    problems.push('rateLimit.key must name a param');
  else if (typeof key === 'string' && !paramNames(params).includes(key) && paramNames(params).length > 0)
    problems.push(
      `rateLimit.key "${key}" is not one of the task's params (${paramNames(params).join(', ')})`,
    );
  return problems;
}

function paramNames(params: Record<string, unknown> | undefined): string[] {
  const properties = params?.properties;
  return typeof properties === 'object' && properties !== null ? Object.keys(properties) : [];
}

function windowMs(per: unknown): number | undefined {
  if (typeof per === 'number') return Number.isInteger(per) ? per : undefined;
  if (typeof per === 'string') return parseDurationMs(per, { bareNumberIsMs: true });
  return undefined;
}

/** The limit a valid option (see rateLimitProblems) enforces. */
export function rateLimitOf(option: RateLimitOption): RateLimit {
  const perMs = windowMs(option.per);
  if (perMs === undefined)
    throw new RangeError(`rateLimit.per ${JSON.stringify(option.per)} is not a duration`);
  return option.key === undefined ? { max: option.max, perMs } : { max: option.max, perMs, key: option.key };
}

/**
 * The value whose budget a task draws on: its key param's value ('' when the limit has no key or the
 * param is absent). Long values are hashed, so a key stays short.
 */
export function rateLimitKeyValue(limit: RateLimit, params: unknown): string {
  if (limit.key === undefined) return '';
  const raw = (params as Record<string, unknown> | null | undefined)?.[limit.key];
  if (raw === undefined || raw === null) return '';
  const text = typeof raw === 'string' ? raw : JSON.stringify(raw);
  return text.length > 128 ? `sha1:${createHash('sha1').update(text).digest('hex')}` : text;
}

/**
 * Where a budget is counted: beside the task type's own queue (so on Redis Cluster it shares that
 * queue's slot), whatever queue or partition a task of the type was routed to.
 */
export function rateLimitKeys(
  prefix: string,
  queue: string,
  task: string,
  keyValue: string,
): [string, string] {
  const log = jobbersKey(prefix, queue, `ratelimit:${task}:${keyValue}`);
  return [log, `${log}:wake`];
}

/**
 * Admits one start of a task of a rate-limited type, or answers how long it must wait (ms). The
 * start is recorded when admitted: a task admitted and then not run still used its place.
 */
export async function acquireRateLimit(
  redis: Redis,
  prefix: string,
  start: { queue: string; task: string; id: string; params: unknown; limit: RateLimit },
): Promise<number> {
  const { queue, task, id, params, limit } = start;
  const keys = rateLimitKeys(prefix, queue, task, rateLimitKeyValue(limit, params));
  return scripts.rateLimitAcquire.run(redis, keys, [limit.max, limit.perMs, id]);
}
