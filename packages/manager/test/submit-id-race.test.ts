// Racing submissions of one new id, through two managers on one Redis: exactly one is created (201),
// a racer of the same type gets 200 with the stored task, one of another type 409, and Redis holds
// one job for the id in one queue, never one per queue.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { defineTask, jobKey, TaskRegistry } from '@jobbers/core';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';

const registry = new TaskRegistry([
  defineTask({ name: 'race.a', queue: 'alpha', queues: ['beta'], params: { type: 'object' }, run: () => 1 }),
  defineTask({ name: 'race.b', queue: 'beta', params: { type: 'object' }, run: () => 2 }),
]);
const prefix = uniquePrefix('id-race');
let redis: RedisServer;
let managers: TestManager[];

before(async () => {
  redis = await startRedisServer();
  managers = await Promise.all(
    [1, 2].map(() => startTestManager({ redisUrl: redis.url, prefix, extra: { registry } })),
  );
});
after(async () => {
  await Promise.all(managers?.map((m) => m.close()) ?? []);
  await redis?.stop();
});

interface Racer {
  task: string;
  queue?: string;
  batch?: boolean;
}

/** Each racer's answer for the id: status, the created flag and the task type it reports. */
async function race(id: string, racers: Racer[]) {
  return Promise.all(
    racers.map(async (racer, i) => {
      const manager = managers[i % 2]!;
      const entry = { task: racer.task, queue: racer.queue, id, params: { racer: i } };
      if (!racer.batch) {
        const res = await manager.request('POST', '/v1/tasks', entry);
        return {
          racer,
          status: res.status,
          created: res.status === 201,
          task: res.body.task,
          body: res.body,
        };
      }
      const res = await manager.request('POST', '/v1/tasks/batch', {
        tasks: [entry, { task: racer.task, id: `${id}-own-${i}`, params: {} }],
      });
      const first = res.body.tasks?.[0];
      return {
        racer,
        status: res.status,
        created: first?.created === true,
        task: first?.task,
        body: res.body,
      };
    }),
  );
}

async function jobsWithId(id: string): Promise<string[]> {
  const found: string[] = [];
  for (const queue of registry.queues) {
    const name = await managers[0]!.connection.hget(jobKey(prefix, queue, id), 'name');
    if (name) found.push(`${queue}:${name}`);
  }
  return found;
}

const rounds: { kind: string; racers: Racer[] }[] = [];
for (let round = 0; round < 6; round++) {
  rounds.push({ kind: 'same type', racers: Array.from({ length: 8 }, () => ({ task: 'race.a' })) });
  rounds.push({
    kind: 'same type, two queues',
    racers: Array.from({ length: 8 }, (_, i) => ({ task: 'race.a', queue: i % 2 ? 'beta' : 'alpha' })),
  });
  rounds.push({
    kind: 'two types in two queues',
    racers: Array.from({ length: 8 }, (_, i) => ({ task: i % 2 ? 'race.b' : 'race.a' })),
  });
  rounds.push({
    kind: 'batches racing singles',
    racers: Array.from({ length: 8 }, (_, i) => ({ task: 'race.a', batch: i % 2 === 0 })),
  });
}

test('racing submissions of one new id create exactly one task across two managers', async () => {
  for (const [n, { kind, racers }] of rounds.entries()) {
    const id = `race-${n}`;
    const answers = await race(id, racers);
    const what = `round ${n} (${kind}): ${JSON.stringify(answers.map((a) => [a.status, a.created, a.task]))}`;
    const winners = answers.filter((a) => a.created);
    assert.equal(winners.length, 1, what);
    const winner = winners[0]!;
    for (const answer of answers) {
      if (answer === winner) continue;
      if (answer.racer.task === winner.racer.task) {
        assert.equal(answer.status, answer.racer.batch ? 201 : 200, what);
        assert.equal(answer.task, winner.racer.task, what);
      } else {
        assert.equal(answer.status, 409, what);
        assert.equal(answer.body.error.code, 'TASK_ID_CONFLICT', what);
      }
    }
    assert.deepEqual(
      await jobsWithId(id),
      [`${winner.body.queue ?? winner.body.tasks[0].queue}:${winner.task}`],
      what,
    );
  }
});
