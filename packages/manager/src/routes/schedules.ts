// /v1/schedules: tasks submitted by themselves on a cron pattern or every N ms (core schedules.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  ScheduleBody,
  ScheduleIdParams,
  ScheduleList,
  SchedulePutBody,
  type Schedules,
  ScheduleView,
} from '@jobbers/core';
import { Type } from 'typebox';
import { errorResponses } from '../schemas.js';

const bodyErrors = [413, 415] as const;

export const scheduleRoutes: FastifyPluginAsyncTypebox<{ schedules: Schedules }> = async (
  app,
  { schedules },
) => {
  app.post(
    '/schedules',
    {
      schema: {
        operationId: 'createSchedule',
        summary: 'Create a schedule: a task submitted on a cron pattern (with a time zone) or every N ms',
        tags: ['schedules'],
        body: ScheduleBody,
        response: { 201: ScheduleView, ...errorResponses(400, 409, ...bodyErrors, 503) },
      },
    },
    async (request, reply) => reply.code(201).send(await schedules.create(request.body)),
  );

  app.get(
    '/schedules',
    {
      schema: {
        operationId: 'listSchedules',
        summary: 'Every schedule, with when its next run is due',
        tags: ['schedules'],
        response: { 200: ScheduleList, ...errorResponses(503) },
      },
    },
    async () => ({ schedules: await schedules.list() }),
  );

  app.get(
    '/schedules/:id',
    {
      schema: {
        operationId: 'getSchedule',
        summary: 'A schedule, with when its next run is due',
        tags: ['schedules'],
        params: ScheduleIdParams,
        response: { 200: ScheduleView, ...errorResponses(400, 404, 414, 503) },
      },
    },
    async (request) => schedules.get(request.params.id),
  );

  app.put(
    '/schedules/:id',
    {
      schema: {
        operationId: 'putSchedule',
        summary: 'Create or replace a schedule (not one from a task definition)',
        tags: ['schedules'],
        params: ScheduleIdParams,
        body: SchedulePutBody,
        response: {
          200: { ...ScheduleView, description: 'The schedule was replaced' },
          201: { ...ScheduleView, description: 'The schedule was created' },
          ...errorResponses(400, 404, 409, 414, ...bodyErrors, 503),
        },
      },
    },
    async (request, reply) => {
      const { view, created } = await schedules.put({ ...request.body, id: request.params.id });
      return reply.code(created ? 201 : 200).send(view);
    },
  );

  app.delete(
    '/schedules/:id',
    {
      schema: {
        operationId: 'deleteSchedule',
        summary: 'Delete a schedule and its next run (a run already due or running goes on)',
        tags: ['schedules'],
        params: ScheduleIdParams,
        response: {
          200: Type.Object({ id: Type.String(), deleted: Type.Literal(true) }),
          ...errorResponses(400, 404, 409, 414, ...bodyErrors, 503),
        },
      },
    },
    async (request) => {
      await schedules.remove(request.params.id);
      return { id: request.params.id, deleted: true as const };
    },
  );

  for (const [action, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    app.post(
      `/schedules/:id/${action}`,
      {
        schema: {
          operationId: `${action}Schedule`,
          summary: paused
            ? 'Pause a schedule: no run is made until it is resumed'
            : 'Resume a paused schedule from its next tick (missed ticks are not made up)',
          tags: ['schedules'],
          params: ScheduleIdParams,
          response: { 200: ScheduleView, ...errorResponses(400, 404, 409, 414, ...bodyErrors, 503) },
        },
      },
      async (request) => schedules.setPaused(request.params.id, paused),
    );
  }
};
