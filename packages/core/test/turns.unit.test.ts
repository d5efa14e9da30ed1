// Turns for large submissions: at most `limit` run at once, the rest start in arrival order as
// turns free up, and when one fails because Redis is unavailable the waiting ones fail with it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Turns } from '../src/turns.js';

/** A piece of work that runs until released. */
function held() {
  let release!: (value?: unknown) => void;
  let fail!: (error: Error) => void;
  const done = new Promise((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  return { release, fail, work: () => done };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('at most limit run at once; the others start in arrival order as turns free up', async () => {
  const turns = new Turns(2);
  const started: number[] = [];
  const pieces = Array.from({ length: 5 }, () => held());
  const runs = pieces.map((piece, i) =>
    turns.run(() => {
      started.push(i);
      return piece.work();
    }),
  );
  const outcomes = Promise.allSettled(runs);
  await settle();
  assert.deepEqual(started, [0, 1]);
  pieces[1]!.release();
  await settle();
  assert.deepEqual(started, [0, 1, 2]);
  pieces[0]!.fail(new Error('a bad task'));
  await settle();
  assert.deepEqual(started, [0, 1, 2, 3], 'a failure for another cause passes its turn on');
  for (const piece of pieces.slice(2)) piece.release();
  assert.deepEqual(
    (await outcomes).map((o) => o.status),
    ['rejected', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'],
  );
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
});

test('when a piece fails because Redis is unavailable, the waiting ones fail with it at once', async () => {
  const turns = new Turns(1);
  const first = held();
  let laterStarted = false;
  const runs = [
    turns.run(first.work),
    turns.run(async () => {
      laterStarted = true;
    }),
    turns.run(async () => {
      laterStarted = true;
    }),
  ];
  const settled = Promise.allSettled(runs);
  await settle();
  first.fail(new Error('Command timed out'));
  const outcomes = await settled;
  assert.equal(laterStarted, false);
  for (const outcome of outcomes) {
    assert.equal(outcome.status, 'rejected');
    assert.match(String((outcome as PromiseRejectedResult).reason), /Command timed out/);
  }
  // The turn was given back: the next piece runs at once.
  assert.equal(await turns.run(async () => 'ran'), 'ran');
});
