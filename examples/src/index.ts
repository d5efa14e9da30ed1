// The example tasks used by the quickstart and by the tests.
import { setTimeout as sleep } from 'node:timers/promises';
import { defineTask } from '@jobbers/core';

export const echo = defineTask<Record<string, unknown>, Record<string, unknown>>({
  name: 'example.echo',
  queue: 'default',
  params: { type: 'object' },
  run: (params) => params,
});

export const sleepTask = defineTask<{ ms: number }, { sleptMs: number }>({
  name: 'example.sleep',
  queue: 'default',
  params: {
    type: 'object',
    properties: { ms: { type: 'integer', minimum: 0, maximum: 3_600_000 } },
    required: ['ms'],
    additionalProperties: false,
  },
  run: async ({ ms }, ctx) => {
    await sleep(ms, undefined, { signal: ctx.signal });
    return { sleptMs: ms };
  },
});

export const flaky = defineTask<{ failTimes: number }, { attempt: number }>({
  name: 'example.flaky',
  queue: 'default',
  params: {
    type: 'object',
    properties: { failTimes: { type: 'integer', minimum: 0 } },
    required: ['failTimes'],
    additionalProperties: false,
  },
  retries: 3,
  backoff: { type: 'fixed', delay: 100 },
  run: ({ failTimes }, ctx) => {
    if (ctx.attempt <= failTimes)
      throw new Error(`flaky failure on attempt ${ctx.attempt} of ${failTimes} planned`);
    return { attempt: ctx.attempt };
  },
});

export const heartbeat = defineTask<{ seconds: number }, { beats: number }>({
  name: 'example.heartbeat',
  queue: 'default',
  params: {
    type: 'object',
    properties: { seconds: { type: 'integer', minimum: 0, maximum: 86_400 } },
    required: ['seconds'],
    additionalProperties: false,
  },
  shutdown: 'reenqueue',
  run: async ({ seconds }, ctx) => {
    let beats = 0;
    for (; beats < seconds; beats++) {
      await sleep(1000, undefined, { signal: ctx.signal });
      await ctx.heartbeat();
    }
    return { beats };
  },
});

// A workflow's parts: square numbers in parallel, then add up what the parents returned
// (docs/workflows.md submits this fan-out/fan-in).
export const square = defineTask<{ n: number }, { value: number }>({
  name: 'example.square',
  queue: 'default',
  params: {
    type: 'object',
    properties: { n: { type: 'number' } },
    required: ['n'],
    additionalProperties: false,
  },
  run: ({ n }) => ({ value: n * n }),
});

export const sum = defineTask<Record<string, never>, { value: number; parts: number }>({
  name: 'example.sum',
  queue: 'default',
  params: { type: 'object', additionalProperties: false },
  run: (_params, ctx) => {
    const values = Object.values(ctx.parents).map((result) => (result as { value?: unknown })?.value);
    const numbers = values.filter((v): v is number => typeof v === 'number');
    return { value: numbers.reduce((a, b) => a + b, 0), parts: numbers.length };
  },
});

export default [echo, sleepTask, flaky, heartbeat, square, sum];
