// The shape of a workflow before anything is stored: fan-outs expand into one node per params entry
// spread over queues by round-robin or by a hash of a param, dependencies on a fan-out become
// dependencies on all its nodes, and a malformed DAG is refused with every problem named.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JobbersError, prepareWorkflow } from '@jobbers/core';

const keysAndQueues = (nodes: { key: string; queue?: string }[]) =>
  nodes.map((n) => `${n.key}@${n.queue ?? '-'}`);

test('a round-robin fan-out puts node i on queue i mod n, and its dependents wait for all of it', () => {
  const workflow = prepareWorkflow({
    name: 'spread',
    nodes: [
      {
        key: 'part',
        task: 'demo.part',
        fanOut: { params: Array.from({ length: 7 }, (_, i) => ({ i })), queues: ['a', 'b', 'c'] },
      },
      { key: 'merge', task: 'demo.merge', dependsOn: ['part'] },
    ],
  });
  assert.deepEqual(keysAndQueues(workflow.nodes), [
    'part-0@a',
    'part-1@b',
    'part-2@c',
    'part-3@a',
    'part-4@b',
    'part-5@c',
    'part-6@a',
    'merge@-',
  ]);
  assert.deepEqual(workflow.nodes.at(-1)!.dependsOn, [
    'part-0',
    'part-1',
    'part-2',
    'part-3',
    'part-4',
    'part-5',
    'part-6',
  ]);
  assert.deepEqual(workflow.nodes[3]!.params, { i: 3 });
});

test('a hash fan-out sends equal values of the param to the same queue, in any order', () => {
  const customers = Array.from({ length: 40 }, (_, i) => `customer-${i % 20}`);
  const spread = (order: string[]) =>
    prepareWorkflow({
      name: 'by-customer',
      nodes: [
        {
          key: 'job',
          task: 'demo.part',
          fanOut: {
            params: order.map((customerId) => ({ customerId })),
            queues: ['q0', 'q1', 'q2', 'q3'],
            strategy: 'hash',
            hashBy: 'customerId',
          },
        },
      ],
    }).nodes.map((n) => [(n.params as { customerId: string }).customerId, n.queue!] as const);
  const first = new Map(spread(customers));
  for (const [customer, queue] of spread([...customers].reverse()))
    assert.equal(first.get(customer), queue, customer);
  for (const [customer, queue] of spread(customers))
    assert.equal(first.get(customer), queue, 'one customer, one queue');
  assert.ok(
    new Set(first.values()).size >= 3,
    `20 customers spread over the queues: ${[...new Set(first.values())]}`,
  );
});

test('malformed workflows are refused whole, every problem named', () => {
  const refused = (nodes: unknown[]) => {
    try {
      prepareWorkflow({ name: 'bad', nodes: nodes as never });
    } catch (error) {
      assert.ok(error instanceof JobbersError);
      assert.equal(error.code, 'INVALID_WORKFLOW');
      return error.message;
    }
    assert.fail('accepted');
  };
  assert.match(
    refused([
      { key: 'part-0', task: 't' },
      { key: 'part', task: 't', fanOut: { params: [{}] } },
    ]),
    /"part-0" appears twice/,
  );
  assert.match(
    refused([{ key: 'p', task: 't', params: {}, fanOut: { params: [{}] } }]),
    /params or fanOut.params, not both/,
  );
  assert.match(
    refused([{ key: 'p', task: 't', fanOut: { params: [] } }]),
    /params must list 1..1000 entries/,
  );
  assert.match(
    refused([{ key: 'p', task: 't', fanOut: { params: [{}], strategy: 'hash' } }]),
    /strategy hash needs hashBy/,
  );
  assert.match(
    refused([
      { key: 'a', task: 't', dependsOn: ['c'] },
      { key: 'b', task: 't', dependsOn: ['a'] },
      { key: 'c', task: 't', dependsOn: ['b'] },
    ]),
    /cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)/,
  );
  assert.match(refused([]), /1\.\.10000 nodes, got 0/);
  const chain = Array.from({ length: 10_000 }, (_, i) => ({
    key: `n${i}`,
    task: 't',
    dependsOn: i ? [`n${i - 1}`] : [],
  }));
  assert.equal(
    prepareWorkflow({ name: 'long', nodes: chain }).nodes.length,
    10_000,
    'a 10,000-node chain is checked without overflowing the stack',
  );
});
