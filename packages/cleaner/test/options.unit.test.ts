// Flag parsing: durations with units, ISO times, defaults, and what counts as a filter.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  collectList,
  parseCleanerOptions,
  parseIsoInstant,
  submissionCutoffMs,
  UsageError,
} from '@jobbers/cleaner';
import { parseDurationMs } from '@jobbers/core';

const env = { REDIS_URL: 'redis://127.0.0.1:6390', JOBBERS_PREFIX: 'p' };

test('durations take a unit: ms, s, m, h, d, w', () => {
  assert.equal(parseDurationMs('500ms'), 500);
  assert.equal(parseDurationMs('30s'), 30_000);
  assert.equal(parseDurationMs('15m'), 900_000);
  assert.equal(parseDurationMs('12h'), 43_200_000);
  assert.equal(parseDurationMs('7d'), 604_800_000);
  assert.equal(parseDurationMs('2w'), 1_209_600_000);
  assert.equal(parseDurationMs('0s'), 0, 'zero: everything submitted up to now');
  for (const bad of ['7', 'd', '7days', '1.5h', '-1d', '0', ''])
    assert.equal(parseDurationMs(bad), undefined, bad);
});

test('--before takes ISO 8601 dates and date-times only', () => {
  assert.equal(parseIsoInstant('2025-01-31T12:00:00Z'), Date.UTC(2025, 0, 31, 12));
  assert.equal(parseIsoInstant('2025-01-31'), Date.UTC(2025, 0, 31));
  assert.equal(parseIsoInstant('2025-01-31T12:00:00.123+02:00'), Date.UTC(2025, 0, 31, 10, 0, 0, 123));
  for (const bad of ['yesterday', '31/01/2025', '2025-02-30T25:00:00Z', '1738000000']) {
    assert.equal(parseIsoInstant(bad), undefined, bad);
  }
});

test('repeatable flags also accept comma lists', () => {
  assert.deepEqual(collectList('completed, failed', ['waiting']), ['waiting', 'completed', 'failed']);
});

test('without --state only finished tasks are pruned; states come back in a fixed order', () => {
  assert.deepEqual(parseCleanerOptions({ queue: ['q'] }, env).states, ['completed', 'failed']);
  assert.deepEqual(parseCleanerOptions({ state: ['delayed', 'completed', 'delayed'] }, env).states, [
    'completed',
    'delayed',
  ]);
});

test('--older-than is measured from the start of the run; --before is absolute', () => {
  const relative = parseCleanerOptions({ olderThan: '1h' }, env);
  assert.equal(submissionCutoffMs(relative, 10_000_000), 10_000_000 - 3_600_000);
  const absolute = parseCleanerOptions({ before: '2025-01-01T00:00:00Z' }, env);
  assert.equal(submissionCutoffMs(absolute, 10_000_000), Date.UTC(2025, 0, 1));
});

test('--limit and --dry-run are not filters: alone they are refused', () => {
  assert.throws(() => parseCleanerOptions({ limit: '10', dryRun: true }, env), UsageError);
  assert.throws(() => parseCleanerOptions({}, env), /refusing to run without a filter/);
});

test('env is read once: REDIS_URL, JOBBERS_PREFIX, and --tasks over JOBBERS_TASKS', () => {
  const options = parseCleanerOptions(
    { state: ['failed'], tasks: './tasks.js' },
    { ...env, JOBBERS_TASKS: '@jobbers/examples' },
  );
  assert.equal(options.redisUrl, env.REDIS_URL);
  assert.equal(options.prefix, 'p');
  assert.equal(options.tasksModule, './tasks.js');
  assert.equal(parseCleanerOptions({ state: ['failed'] }, env).tasksModule, undefined);
});
