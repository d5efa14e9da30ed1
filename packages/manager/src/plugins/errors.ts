// Maps every error to the one error body `{error: {code, message, details?}}` and its status.

import type { Duplex } from 'node:stream';
import { type ErrorCode, isJobbersError, isRedisUnavailableError } from '@jobbers/core';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import FindMyWay, { type HTTPMethod } from 'find-my-way';

/** An HTTP-level refusal with its own status and code (auth, media type, request shape). */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

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
  INVALID_WORKFLOW: 400,
  WORKFLOW_NOT_FOUND: 404,
  INVALID_SCHEDULE: 400,
  SCHEDULE_NOT_FOUND: 404,
  SCHEDULE_EXISTS: 409,
  SCHEDULE_BUSY: 409,
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
  FST_BEARER_AUTH_MISSING_AUTHORIZATION_HEADER: { status: 401, code: 'UNAUTHORIZED' },
  FST_BEARER_AUTH_INVALID_AUTHORIZATION_HEADER: { status: 401, code: 'UNAUTHORIZED' },
};

const fastifyMessages: Record<string, string> = {
  FST_BEARER_AUTH_MISSING_AUTHORIZATION_HEADER: 'missing Authorization: Bearer <key>',
  FST_BEARER_AUTH_INVALID_AUTHORIZATION_HEADER: 'malformed Authorization header; expected Bearer <key>',
};

export function errorBody(code: string, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

/** Errors Fastify raises before a route is found: a URL that does not decode, a parameter too long. */
export function frameworkError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return reply.code(414).send(errorBody('URI_TOO_LONG', 'a path segment is longer than any id or name'));
  }
  if (error.code === 'FST_ERR_BAD_URL') {
    return reply.code(400).send(errorBody('BAD_URL', 'the URL is not validly percent-encoded'));
  }
  return reply.code(400).send(errorBody('BAD_REQUEST', 'the request could not be routed'));
}

const clientErrors: Record<string, [number, string, string, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [
    408,
    'Request Timeout',
    'REQUEST_TIMEOUT',
    'the request was not received in time',
  ],
  HPE_HEADER_OVERFLOW: [
    431,
    'Request Header Fields Too Large',
    'HEADERS_TOO_LARGE',
    'the request head is too large',
  ],
};

/** Errors Node raises before Fastify sees a request (timeouts, malformed HTTP): coded bodies too. */
export function clientError(error: Error & { code?: string }, socket: Duplex) {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, text, code, message] = clientErrors[error.code ?? ''] ?? [
    400,
    'Bad Request',
    'BAD_REQUEST',
    'the request is not valid HTTP',
  ];
  const body = JSON.stringify(errorBody(code, message));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${text}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** The path of a request target, also of an absolute-form one (`http://host/path?query`). */
function pathOf(url: string): string {
  return url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '').split('?')[0] || '/';
}

export default fp(async function errorsPlugin(app: FastifyInstance, options: { maxParamLength: number }) {
  // A copy of the route table, to tell an unknown path (404) from a known one asked with another method (405).
  const routes = FindMyWay({ maxParamLength: options.maxParamLength });
  const methods = new Set<HTTPMethod>();
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat() as HTTPMethod[]) {
      if (method === 'HEAD' || routes.hasRoute(method, route.url)) continue;
      methods.add(method);
      routes.on(method, route.url, () => {});
    }
  });

  app.setNotFoundHandler((request, reply) => {
    const path = pathOf(request.url);
    const allowed = [...methods].filter((method) => method !== request.method && routes.find(method, path));
    if (allowed.length > 0) {
      return reply
        .code(405)
        .header('allow', allowed.sort().join(', '))
        .send(
          errorBody(
            'METHOD_NOT_ALLOWED',
            `${request.method} is not allowed here; use ${allowed.join(' or ')}`,
          ),
        );
    }
    return reply.code(404).send(errorBody('ROUTE_NOT_FOUND', `no route ${request.method} ${path}`));
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
    if (known) {
      if (known.status === 401) reply.header('www-authenticate', 'Bearer');
      const message = fastifyMessages[error.code] ?? error.message;
      return reply.code(known.status).send(errorBody(known.code, message));
    }
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
