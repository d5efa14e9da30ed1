// What a request may be before a route sees it: an uncompressed body, and JSON no deeper than
// maxBodyDepth (deeper params fail in Redis's Lua JSON decoder or blow a recursive walk).
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { HttpError } from './errors.js';

export const maxBodyDepth = 64;

/** True when arrays and objects nest deeper than `limit`; iterative, so any depth is safe to check. */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (current === null || typeof current !== 'object') continue;
    if (depth > limit) return true;
    for (const child of Object.values(current)) stack.push([child, depth + 1]);
  }
  return false;
}

export default fp(async function requestBoundsPlugin(app: FastifyInstance) {
  // Callback hooks: an async hook costs a promise and a microtask per request, on every request.
  app.addHook('preParsing', (request, _reply, payload, done) => {
    // GET and HEAD bodies are never read, so their Content-Encoding does not matter.
    const encoding =
      request.method === 'GET' || request.method === 'HEAD' ? undefined : request.headers['content-encoding'];
    if (encoding && encoding.toLowerCase() !== 'identity') {
      done(
        new HttpError(
          415,
          'UNSUPPORTED_MEDIA_TYPE',
          `Content-Encoding ${encoding} is not supported; send the body uncompressed`,
        ),
      );
      return;
    }
    done(null, payload);
  });
  app.addHook('preValidation', (request, _reply, done) => {
    if (nestsDeeperThan(request.body, maxBodyDepth)) {
      done(new HttpError(400, 'VALIDATION_FAILED', `the body nests deeper than ${maxBodyDepth} levels`));
      return;
    }
    done();
  });
});
