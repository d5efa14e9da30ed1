// The error responses of the routes, by HTTP status. The data schemas of the task API (bodies, task
// views, pages, queue summaries) are core's (schemas.ts), shared with its own types.
import { Type } from '@fastify/type-provider-typebox';
import { ErrorBody } from '@jobbers/core';

const errorMeanings = {
  400: 'Invalid input; the code says which check failed',
  401: 'No API key, or a malformed Authorization header',
  403: 'The API key is not accepted',
  404: 'No such task or queue',
  409: 'The task id or state conflicts with the request',
  413: 'The body is larger than the limit',
  414: 'A path segment is longer than any id or name',
  415: 'The body is not JSON, or it is compressed',
  429: 'Too many event streams are open on this manager',
  503: 'Redis is not reachable; try again later',
} as const;
export type ErrorStatus = keyof typeof errorMeanings;

/** The coded error body for each status a route can answer, described. */
export function errorResponses<S extends ErrorStatus>(...statuses: S[]) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      Type.Object(ErrorBody.properties, { description: errorMeanings[status] }),
    ]),
  ) as Record<S, typeof ErrorBody>;
}
