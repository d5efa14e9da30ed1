// The bench's verdict on a noisy ratio: a bootstrap interval of the same-round median, and a
// verdict that says "met" or "below" only when the interval agrees with the ratio of medians.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { median, medianInterval, settledVerdict } from '../../bench/stats.js';

/** Round ratios spread evenly around `centre` (± `spread`), in a scrambled order. */
function rounds(count: number, centre: number, spread: number): number[] {
  const values = Array.from({ length: count }, (_, k) => centre - spread + (2 * spread * k) / (count - 1));
  return values.map((_, k) => values[(k * 7) % count]!);
}

test('the interval of identical rounds is that value; it holds the median and stays within the rounds', () => {
  assert.deepEqual(medianInterval([0.93, 0.93, 0.93, 0.93]), { low: 0.93, high: 0.93 });
  const values = rounds(17, 0.9, 0.1);
  const { low, high } = medianInterval(values);
  assert.ok(low <= median(values) && median(values) <= high, `${low} <= ${median(values)} <= ${high}`);
  assert.ok(low >= Math.min(...values) && high <= Math.max(...values));
  assert.ok(low < high, 'spread rounds give an interval, not a point');
});

test('the interval is reproducible and narrows as rounds are added', () => {
  const few = rounds(9, 0.92, 0.08);
  assert.deepEqual(medianInterval(few), medianInterval([...few]));
  const many = rounds(81, 0.92, 0.08);
  const width = (i: { low: number; high: number }) => i.high - i.low;
  assert.ok(width(medianInterval(many)) < width(medianInterval(few)) / 2);
});

test('met or below only when the ratio and the whole interval agree; otherwise not settled', () => {
  assert.equal(settledVerdict(0.95, { low: 0.91, high: 0.97 }, 0.9), 'meets target');
  assert.equal(settledVerdict(0.85, { low: 0.8, high: 0.88 }, 0.9), 'BELOW TARGET');
  assert.match(settledVerdict(0.93, { low: 0.85, high: 0.96 }, 0.9), /^NOT SETTLED/);
  assert.match(settledVerdict(0.91, { low: 0.8, high: 0.89 }, 0.9), /^NOT SETTLED/);
  assert.match(settledVerdict(0.89, { low: 0.91, high: 0.95 }, 0.9), /^NOT SETTLED/);
  assert.equal(settledVerdict(0.9, { low: 0.9, high: 0.9 }, 0.9), 'meets target');
});
