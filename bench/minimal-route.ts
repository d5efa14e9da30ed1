// The baseline the REST bench holds the manager against: the least a REST front of BullMQ does.
// A Fastify server with two routes, POST /v1/tasks (one queue.add) and POST /v1/tasks/batch (one
// addBulk), no validation, no id check, no metrics, no logging, on the same Redis and prefix layout.
// Run as a process of its own, as jobbers-manager is: `node --import tsx bench/minimal-route.ts`
// with REDIS_URL, JOBBERS_PREFIX and PORT; it prints "listening <port>" when ready.
import { Queue } from 'bullmq';
import Fastify from 'fastify';
import { Redis } from 'ioredis';

interface Submission {
  task: string;
  params?: unknown;
}

const connection = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
const queue = new Queue('default', { connection, prefix: process.env.JOBBERS_PREFIX ?? 'jobbers' });
const app = Fastify({ logger: false });

app.post<{ Body: Submission }>('/v1/tasks', async (request, reply) => {
  const job = await queue.add(request.body.task, request.body.params ?? {});
  return reply.code(201).send({ id: job.id, task: request.body.task, queue: 'default', state: 'waiting' });
});

app.post<{ Body: { tasks: Submission[] } }>('/v1/tasks/batch', async (request, reply) => {
  const jobs = await queue.addBulk(request.body.tasks.map((t) => ({ name: t.task, data: t.params ?? {} })));
  return reply.code(201).send({ tasks: jobs.map((job) => ({ id: job.id, state: 'waiting' })) });
});

const shutdown = async () => {
  await app.close();
  await queue.close();
  connection.disconnect();
  process.exit(0);
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
const address = app.server.address();
process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : ''}\n`);
