// Maps every error to the one error body `{error: {code, message, details?}}` and its status.
import { type ErrorCode, isJobbersError, isRedisUnavailableError } from '@jobbers/core';
import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

const statusByCode: Record<ErrorCode, number> = {
  CONFIG_INVALID: 500,
  TASKS_MODULE_INVALID: 500,
  TASK_DEFINITION_INVALID: 500,
  UNKNOWN_TASK_TYPE: 400,
  UNKNOWN_QUEUE: 400,
  QUEUE_NOT_ALLOWED: 400,
  UNKNOWN_ROLE: 400,
  INVALID_PARAMS: 400,
  INVALID_TASK_ID: 400,
  INVALID_OPTIONS: 400,
  VALIDATION_FAILED: 400,
  INVALID_FILTER: 400,
  INVALID_CURSOR: 400,
  TASK_NOT_FOUND: 404,
  QUEUE_NOT_FOUND: 404,
  TASK_ID_CONFLICT: 409,
  TASK_STATE_CONFLICT: 409,
  REDIS_UNAVAILABLE: 503,
  REDIS_VERSION_UNSUPPORTED: 503,
};

const fastifyCodes: Record<string, { status: number; code: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'BODY_TOO_LARGE' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'VALIDATION_FAILED' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'VALIDATION_FAILED' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'INVALID_JSON' },
};

export function errorBody(code: string, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

export default fp(async function errorsPlugin(app: FastifyInstance) {
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url}`));
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (isJobbersError(error)) {
      const status = statusByCode[error.code] ?? 500;
      if (status >= 500) request.log.error({ err: error }, error.message);
      return reply.code(status).send(errorBody(error.code, error.message, error.details));
    }
    if (error.validation) {
      return reply.code(400).send(errorBody('VALIDATION_FAILED', error.message, error.validation));
    }
    const known = error.code ? fastifyCodes[error.code] : undefined;
    if (known) return reply.code(known.status).send(errorBody(known.code, error.message));
    if (error instanceof SyntaxError) return reply.code(400).send(errorBody('INVALID_JSON', error.message));
    if (isRedisUnavailableError(error)) {
      request.log.warn({ err: error }, 'Redis unavailable');
      return reply.code(503).send(errorBody('REDIS_UNAVAILABLE', 'Redis is not reachable; try again later'));
    }
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.code(error.statusCode).send(errorBody(error.code ?? 'BAD_REQUEST', error.message));
    }
    request.log.error({ err: error }, 'unhandled error');
    return reply.code(500).send(errorBody('INTERNAL', 'internal error'));
  });
});
