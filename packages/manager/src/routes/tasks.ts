import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { SubmitRequest, TaskClient } from '@jobbers/core';
import {
  BatchBody,
  BatchResult,
  CancelResult,
  ErrorBody,
  ListTasksQuery,
  RetryIncidentsBody,
  RetryIncidentsResult,
  SubmitBody,
  SubmitResult,
  TaskIdParams,
  TaskPage,
  TaskView,
} from '../schemas.js';

const errors = {
  400: ErrorBody,
  404: ErrorBody,
  409: ErrorBody,
  413: ErrorBody,
  415: ErrorBody,
  503: ErrorBody,
};

function toRequest(body: SubmitBody, traceparent: string | undefined): SubmitRequest {
  return { ...body, traceparent };
}

export const taskRoutes: FastifyPluginAsyncTypebox<{ client: TaskClient }> = async (app, { client }) => {
  app.post(
    '/tasks',
    {
      schema: {
        summary: 'Submit a task',
        tags: ['tasks'],
        body: SubmitBody,
        response: { 200: SubmitResult, 201: SubmitResult, ...errors },
      },
    },
    async (request, reply) => {
      const traceparent = request.headers.traceparent as string | undefined;
      const { created, ...result } = await client.submit(toRequest(request.body, traceparent));
      return reply.code(created ? 201 : 200).send(result);
    },
  );

  app.post(
    '/tasks/batch',
    {
      schema: {
        summary: 'Submit up to 1000 tasks; one invalid task rejects the whole batch',
        tags: ['tasks'],
        body: BatchBody,
        response: { 201: BatchResult, ...errors },
      },
    },
    async (request, reply) => {
      const traceparent = request.headers.traceparent as string | undefined;
      const results = await client.submitBatch(request.body.tasks.map((t) => toRequest(t, traceparent)));
      return reply.code(201).send({ tasks: results });
    },
  );

  app.get(
    '/tasks/:id',
    {
      schema: {
        summary: 'Read a task: state, params, result or error, attempts and times',
        tags: ['tasks'],
        params: TaskIdParams,
        response: { 200: TaskView, ...errors },
      },
    },
    async (request) => client.getTask(request.params.id),
  );

  app.get(
    '/tasks',
    {
      schema: {
        summary: 'List tasks by queue, type, state and submission time, a page at a time',
        description:
          'Order per state: waiting and active most recently queued first, prioritized and delayed in the order they will run, completed and failed most recently finished first. A page examines at most 10,000 entries, so with narrow filters it may hold fewer than limit tasks and still carry a nextCursor.',
        tags: ['tasks'],
        querystring: ListTasksQuery,
        response: { 200: TaskPage, ...errors },
      },
    },
    async (request) => {
      const { full, ...query } = request.query;
      return client.listTasks(query, { full });
    },
  );

  app.post(
    '/tasks/:id/retry',
    {
      schema: {
        summary: 'Resolve an incident: a failed task runs again with fresh retries',
        tags: ['tasks'],
        params: TaskIdParams,
        response: { 200: TaskView, ...errors },
      },
    },
    async (request) => client.retryTask(request.params.id),
  );

  app.post(
    '/tasks/retry',
    {
      schema: {
        summary: 'Resolve up to limit incidents matching the filter, most recently failed first',
        tags: ['tasks'],
        body: RetryIncidentsBody,
        response: { 200: RetryIncidentsResult, ...errors },
      },
    },
    async (request) => client.retryIncidents(request.body),
  );

  app.post(
    '/tasks/:id/cancel',
    {
      schema: {
        summary: 'Cancel a task that has not started; it is removed, so GET answers 404 afterwards',
        tags: ['tasks'],
        params: TaskIdParams,
        response: { 200: CancelResult, ...errors },
      },
    },
    async (request) => client.cancelTask(request.params.id),
  );
};
