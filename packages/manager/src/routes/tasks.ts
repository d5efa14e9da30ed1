import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { SubmitRequest, TaskClient } from '@jobbers/core';
import {
  BatchBody,
  BatchResult,
  ErrorBody,
  SubmitBody,
  SubmitResult,
  TaskIdParams,
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
    '/v1/tasks',
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
    '/v1/tasks/batch',
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
    '/v1/tasks/:id',
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
};
