// Stream ids order by milliseconds, then sequence number, as integers (not as text), exactly even
// past what a JavaScript number holds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareStreamIds } from '../src/metrics/stream-ids.js';

test('stream ids order by milliseconds, then by sequence number, as integers', () => {
  const ordered = [
    '0-0',
    '0-1',
    '999-5',
    '1000-0',
    '1000-9',
    '1000-10',
    '1700000000000-0',
    '18446744073709551615-18446744073709551614',
    '18446744073709551615-18446744073709551615',
  ];
  for (let i = 0; i < ordered.length; i++)
    for (let j = 0; j < ordered.length; j++)
      assert.equal(
        Math.sign(compareStreamIds(ordered[i]!, ordered[j]!)),
        Math.sign(i - j),
        `${ordered[i]} vs ${ordered[j]}`,
      );
});

test('an id without a sequence number is sequence 0', () => {
  assert.equal(compareStreamIds('1000', '1000-0'), 0);
  assert.ok(compareStreamIds('1000', '1000-1') < 0);
});
