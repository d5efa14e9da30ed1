import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Workflows } from '@jobbers/core';
import {
  ListWorkflowsQuery,
  WorkflowBody,
  WorkflowCreated,
  WorkflowIdParams,
  WorkflowPage,
  WorkflowView,
} from '@jobbers/core';
import { submitWorkflowOperationId } from '../openapi.js';
import { errorResponses } from '../schemas.js';

const bodyErrors = [413, 415] as const;

export const workflowRoutes: FastifyPluginAsyncTypebox<{ workflows: Workflows }> = async (
  app,
  { workflows },
) => {
  app.post(
    '/workflows',
    {
      schema: {
        operationId: submitWorkflowOperationId,
        summary: 'Submit a workflow: a DAG of tasks; a node is submitted once its parents completed',
        tags: ['workflows'],
        body: WorkflowBody,
        response: {
          200: {
            ...WorkflowCreated,
            description: 'A workflow with this id existed already: nothing was submitted',
          },
          201: { ...WorkflowCreated, description: 'The workflow was stored and its first nodes submitted' },
          ...errorResponses(400, ...bodyErrors, 503),
        },
      },
    },
    async (request, reply) => {
      const traceparent = request.headers.traceparent as string | undefined;
      const { created, ...result } = await workflows.create({ ...request.body, traceparent });
      return reply.code(created ? 201 : 200).send(result);
    },
  );

  app.get(
    '/workflows/:id',
    {
      schema: {
        operationId: 'getWorkflow',
        summary: "A workflow: every node's state, the frontier, and where it has been",
        tags: ['workflows'],
        params: WorkflowIdParams,
        response: { 200: WorkflowView, ...errorResponses(400, 404, 414, 503) },
      },
    },
    async (request) => workflows.getWithTasks(request.params.id),
  );

  app.get(
    '/workflows',
    {
      schema: {
        operationId: 'listWorkflows',
        summary: 'Workflows, most recently submitted first',
        tags: ['workflows'],
        querystring: ListWorkflowsQuery,
        response: { 200: WorkflowPage, ...errorResponses(400, 503) },
      },
    },
    async (request) => {
      const { cursor, limit = 50, name, state } = request.query;
      const page = await workflows.list(limit, cursor ? Number(cursor.slice(1)) : undefined, { name, state });
      return { workflows: page.workflows, ...(page.nextCursor ? { nextCursor: `w${page.nextCursor}` } : {}) };
    },
  );

  app.post(
    '/workflows/:id/cancel',
    {
      schema: {
        operationId: 'cancelWorkflow',
        summary: 'Cancel a running workflow: waiting nodes are skipped, tasks not started are cancelled',
        tags: ['workflows'],
        params: WorkflowIdParams,
        response: { 200: WorkflowView, ...errorResponses(400, 404, 409, ...bodyErrors, 414, 503) },
      },
    },
    async (request) => workflows.cancel(request.params.id),
  );

  app.post(
    '/workflows/:id/retry',
    {
      schema: {
        operationId: 'retryWorkflow',
        summary: 'Run a failed workflow again: its failed nodes are retried, skipped ones wait again',
        tags: ['workflows'],
        params: WorkflowIdParams,
        response: { 200: WorkflowView, ...errorResponses(400, 404, 409, ...bodyErrors, 414, 503) },
      },
    },
    async (request) => workflows.retry(request.params.id),
  );
};
