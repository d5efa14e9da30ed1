// The one duration parser the CLIs share: a whole number and a unit; bare numbers only when asked.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDurationMs } from '@jobbers/core';

test('durations take a whole number and a unit: ms, s, m, h, d, w', () => {
  assert.equal(parseDurationMs('500ms'), 500);
  assert.equal(parseDurationMs(' 30s '), 30_000);
  assert.equal(parseDurationMs('15m'), 900_000);
  assert.equal(parseDurationMs('12h'), 43_200_000);
  assert.equal(parseDurationMs('7d'), 604_800_000);
  assert.equal(parseDurationMs('2w'), 1_209_600_000);
  assert.equal(parseDurationMs('0s'), 0);
});

test('a bare number is milliseconds only where the syntax allows it', () => {
  assert.equal(parseDurationMs('250'), undefined);
  assert.equal(parseDurationMs('250', { bareNumberIsMs: true }), 250);
});

test('malformed or inexact durations are undefined', () => {
  for (const bad of ['d', '7days', '1.5h', '-1d', '', 'soon', '99999999999999999w'])
    assert.equal(parseDurationMs(bad, { bareNumberIsMs: true }), undefined, bad);
});
