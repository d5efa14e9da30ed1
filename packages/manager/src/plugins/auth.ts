// Bearer-key auth for the /v1 context when JOBBERS_API_KEYS is set. Registered inside that context,
// its hook guards exactly the routes matched there, whatever spelling of the URL reached them.
import { createHash, timingSafeEqual } from 'node:crypto';
import bearerAuth from '@fastify/bearer-auth';
import { JobbersError } from '@jobbers/core';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { HttpError } from './errors.js';

// Keys are compared as SHA-256 digests: equal lengths, so the comparison time says nothing of the key.
const digest = (key: string) => createHash('sha256').update(key).digest();
// RFC 6750's b64token: `Bearer <key> garbage` or `Bearer k1,k2` is a malformed header, not a wrong key.
const wellFormedKey = /^[A-Za-z0-9\-._~+/]+=*$/;

export default fp(async function authPlugin(app: FastifyInstance, options: { apiKeys: string[] }) {
  if (options.apiKeys.length === 0) return;
  const unusable = options.apiKeys.filter((key) => !wellFormedKey.test(key));
  if (unusable.length > 0) {
    throw new JobbersError(
      'CONFIG_INVALID',
      `JOBBERS_API_KEYS: ${unusable.length} key(s) hold characters a bearer token cannot carry; use letters, digits and -._~+/`,
    );
  }
  const digests = options.apiKeys.map(digest);
  await app.register(bearerAuth, {
    keys: [],
    addHook: false,
    specCompliance: 'rfc6749',
    verifyErrorLogLevel: 'info',
    auth: (key: string) => {
      if (!wellFormedKey.test(key)) return false;
      const given = digest(key);
      let accepted = false;
      for (const known of digests) accepted = timingSafeEqual(known, given) || accepted;
      if (!accepted) throw new HttpError(403, 'FORBIDDEN', 'API key not accepted');
      return true;
    },
  });
  app.addHook('onRequest', app.verifyBearerAuth!);
});
