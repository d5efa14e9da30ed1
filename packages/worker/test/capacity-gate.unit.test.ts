// The slot accounting behind WORKER_CONCURRENT_TASKS and WORKER_TTL, without Redis.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CapacityGate, QueueSlots } from '@jobbers/worker';

test('reservations are granted first come, first served, and only while slots are free', async () => {
  const gate = new CapacityGate(2);
  assert.equal(await gate.reserve(), true);
  assert.equal(await gate.reserve(), true);
  const order: string[] = [];
  const a = gate.reserve().then((granted) => order.push(`a:${granted}`));
  const b = gate.reserve().then((granted) => order.push(`b:${granted}`));
  gate.commit();
  gate.cancel();
  await a;
  assert.deepEqual(order, ['a:true']);
  gate.release();
  await b;
  assert.deepEqual(order, ['a:true', 'b:true']);
});

test('a job fetched without a reservation takes a slot only if one is free and nobody waits', async () => {
  const gate = new CapacityGate(1);
  assert.equal(gate.tryTake(), true);
  assert.equal(gate.tryTake(), false);
  const waiting = gate.reserve();
  gate.release();
  assert.equal(await waiting, true);
  assert.equal(gate.tryTake(), false, 'the reservation holds the slot');
});

test('WORKER_TTL: reservations never exceed the budget; a cancelled fetch gives its share back', async () => {
  const gate = new CapacityGate(10, 2);
  assert.equal(await gate.reserve(), true);
  assert.equal(await gate.reserve(), true);
  let third: boolean | undefined;
  const pending = gate.reserve().then((granted) => {
    third = granted;
  });
  gate.cancel();
  await pending;
  assert.equal(third, true, 'the cancelled fetch left room in the budget');
  gate.commit();
  gate.commit();
  assert.equal(gate.ttlReached, true);
  assert.equal(await gate.reserve(), false);
  assert.equal(gate.tryTake(), false);
});

test('close answers every waiting reservation with false', async () => {
  const gate = new CapacityGate(1);
  await gate.reserve();
  gate.commit();
  const waiting = gate.reserve();
  gate.close();
  assert.equal(await waiting, false);
  assert.equal(await gate.reserve(), false);
});

test('a queue cap wakes its fetcher when a slot frees up, or when told to stop', async () => {
  const slots = new QueueSlots(1);
  await slots.whenFree();
  assert.equal(slots.tryReserve(), true);
  slots.commit();
  let woke = false;
  const waiting = slots.whenFree().then(() => {
    woke = true;
  });
  await Promise.resolve();
  assert.equal(woke, false);
  slots.release();
  await waiting;
  assert.equal(woke, true);
  assert.equal(slots.tryTake(), true);
  const stopping = slots.whenFree();
  slots.wake();
  await stopping;
});

test('the fetchers of a partitioned queue share its cap: never more than the limit', async () => {
  const slots = new QueueSlots(2);
  // Three partition fetchers see room at once; only two get a slot.
  await Promise.all([slots.whenFree(), slots.whenFree(), slots.whenFree()]);
  const granted = [slots.tryReserve(), slots.tryReserve(), slots.tryTake()];
  assert.deepEqual(granted, [true, true, false]);
  slots.commit();
  slots.cancel();
  assert.equal(slots.runningTasks, 1);
  assert.equal(slots.tryTake(), true);
  assert.equal(slots.tryReserve(), false);
  const both = Promise.all([slots.whenFree(), slots.whenFree()]);
  slots.release();
  await both;
  assert.equal(slots.tryReserve(), true);
  assert.equal(slots.tryTake(), false);
});
