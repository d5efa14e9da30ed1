import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRedisUnavailableError } from '@jobbers/core';
import { ReplyError } from 'ioredis';

test('a Redis that cannot be reached or cannot serve yet is unavailable', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  assert.equal(isRedisUnavailableError(refused), true);
  assert.equal(isRedisUnavailableError(new Error('Connection is closed.')), true);
  assert.equal(isRedisUnavailableError(new ReplyError('CLUSTERDOWN The cluster is down')), true);
  assert.equal(
    isRedisUnavailableError(new ReplyError('TRYAGAIN Multiple keys request during rehashing')),
    true,
  );
  assert.equal(
    isRedisUnavailableError(new ReplyError('LOADING Redis is loading the dataset in memory')),
    true,
  );
  assert.equal(isRedisUnavailableError(new ReplyError('MASTERDOWN Link with MASTER is down')), true);
  assert.equal(
    isRedisUnavailableError(new ReplyError("OOM command not allowed when used memory > 'maxmemory'.")),
    true,
  );
  assert.equal(isRedisUnavailableError(new ReplyError("READONLY You can't write against a replica.")), true);
  assert.equal(isRedisUnavailableError(new Error('Command timed out')), true);
});

test('a bad command or a script error is not', () => {
  assert.equal(isRedisUnavailableError(new ReplyError('WRONGTYPE Operation against a key')), false);
  assert.equal(isRedisUnavailableError(new ReplyError('ERR user_script:1: LOADING failed')), false);
  assert.equal(isRedisUnavailableError(new Error('boom')), false);
  assert.equal(isRedisUnavailableError('ECONNREFUSED'), false);
});
