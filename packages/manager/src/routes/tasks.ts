import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  BatchBody,
  BatchResult,
  CancelResult,
  ListTasksQuery,
  RetryIncidentsBody,
  RetryIncidentsResult,
  SubmitBody,
  type SubmitRequest,
  SubmittedTask,
  type TaskClient,
  TaskIdParams,
  TaskPage,
  TaskView,
} from '@jobbers/core';
import { retryIncidentsOperationId, submitBatchOperationId, submitOperationId } from '../openapi.js';
import { errorResponses } from '../schemas.js';

/** A POST's body is parsed whatever the route, so it can always be too large or not JSON. */
const bodyErrors = [413, 415] as const;

function toRequest(body: SubmitBody, traceparent: string | undefined): SubmitRequest {
  return { ...body, traceparent };
}

export const taskRoutes: FastifyPluginAsyncTypebox<{ client: TaskClient }> = async (app, { client }) => {
  app.post(
    '/tasks',
    {
      schema: {
        operationId: submitOperationId,
        summary: 'Submit a task',
        tags: ['tasks'],
        body: SubmitBody,
        response: {
          200: {
            ...SubmittedTask,
            description:
              'The task with this id existed already, or deduplication kept another task (deduplicated: true, with its id): nothing was enqueued',
          },
          201: { ...SubmittedTask, description: 'The task was enqueued' },
          ...errorResponses(400, 409, ...bodyErrors, 503),
        },
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
        operationId: submitBatchOperationId,
        summary: 'Submit up to 1000 tasks; one invalid task rejects the whole batch',
        tags: ['tasks'],
        body: BatchBody,
        response: { 201: BatchResult, ...errorResponses(400, 409, ...bodyErrors, 503) },
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
        operationId: 'getTask',
        summary: 'Read a task: state, params, result or error, attempts and times',
        tags: ['tasks'],
        params: TaskIdParams,
        response: { 200: TaskView, ...errorResponses(400, 404, 414, 503) },
      },
    },
    async (request) => client.getTask(request.params.id),
  );

  app.get(
    '/tasks',
    {
      schema: {
        operationId: 'listTasks',
        summary: 'List tasks by queue, type, state and submission time, a page at a time',
        description:
          'Order per state: waiting and active most recently queued first, prioritized and delayed in the order they will run, completed and failed most recently finished first. A page examines at most 10,000 entries, so with narrow filters it may hold fewer than limit tasks and still carry a nextCursor.',
        tags: ['tasks'],
        querystring: ListTasksQuery,
        response: { 200: TaskPage, ...errorResponses(400, 503) },
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
        operationId: 'retryTask',
        summary: 'Resolve an incident: a failed task runs again with fresh retries',
        tags: ['tasks'],
        params: TaskIdParams,
        response: { 200: TaskView, ...errorResponses(400, 404, 409, ...bodyErrors, 414, 503) },
      },
    },
    async (request) => client.retryTask(request.params.id),
  );

  app.post(
    '/tasks/retry',
    {
      schema: {
        operationId: retryIncidentsOperationId,
        summary: 'Resolve up to limit incidents matching the filter, most recently failed first',
        tags: ['tasks'],
        body: RetryIncidentsBody,
        response: { 200: RetryIncidentsResult, ...errorResponses(400, ...bodyErrors, 503) },
      },
    },
    async (request) => client.retryIncidents(request.body),
  );

  app.post(
    '/tasks/:id/cancel',
    {
      schema: {
        operationId: 'cancelTask',
        summary: 'Cancel a task that has not started; it is removed, so GET answers 404 afterwards',
        tags: ['tasks'],
        params: TaskIdParams,
        response: { 200: CancelResult, ...errorResponses(400, 404, 409, ...bodyErrors, 414, 503) },
      },
    },
    async (request) => client.cancelTask(request.params.id),
  );
};
