// jobbers-worker --processes N, as a real supervisor with real children: WORKER_TTL recycles each
// child after its tasks (exit 0) and the supervisor replaces it until all work is done; a child that
// dies is replaced too; SIGTERM reaches every child and the supervisor exits once they all have.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import type { RunningProcess } from '../../../test/support/processes.js';
import { type Harness, startHarness, waitFor } from './support/worker-harness.js';

let h: Harness;

before(async () => {
  h = await startHarness('recycle');
});
afterEach(() => h.killWorkers());
after(async () => {
  await h?.close();
});

interface LogLine {
  msg: string;
  childPid?: number;
  pid: number;
}

function logLines(proc: RunningProcess): LogLine[] {
  return proc
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

function childPids(proc: RunningProcess, msg: string): number[] {
  return logLines(proc)
    .filter((l) => l.msg === msg)
    .map((l) => l.childPid!);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('--processes 2 --ttl 5: each child takes at most 5 tasks, recycles and is replaced; all 40 tasks complete', async () => {
  const supervisor = await h.startWorker({}, ['--processes', '2', '--ttl', '5', '--concurrency', '3']);
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) ids.push(await h.submit({ task: 'test.finish', params: { ms: 20 } }));
  const queue = h.client.queue('default');
  await waitFor(async () => (await queue.getCompletedCount()) === 40, {
    timeoutMs: 30_000,
    what: 'all 40 tasks to complete',
  });

  const perProcess = new Map<number, number>();
  for (const id of ids) {
    const task = await h.task(id);
    assert.equal(task.attempts, 1);
    const pid = (task.result as { pid: number }).pid;
    perProcess.set(pid, (perProcess.get(pid) ?? 0) + 1);
  }
  assert.ok(
    [...perProcess.values()].every((n) => n <= 5),
    `no child ran more than its TTL: ${JSON.stringify([...perProcess])}`,
  );
  assert.ok(perProcess.size >= 8, `40 tasks at 5 per child took at least 8 children, got ${perProcess.size}`);
  const recycled = childPids(supervisor, 'worker process recycled: starting a new one');
  assert.ok(recycled.length >= 6, `children recycled: ${recycled.length}`);
  assert.equal(childPids(supervisor, 'worker process died: restarting').length, 0, 'no child crashed');
  assert.equal(await h.transitions('test.finish', 'timed-out'), 0, 'a recycling child leaves no task behind');
  assert.equal(await h.transitions('test.finish', 'completed'), 40);

  supervisor.kill('SIGTERM');
  assert.equal((await supervisor.exited).code, 0);
  for (const pid of childPids(supervisor, 'worker process started'))
    assert.ok(!isAlive(pid), `child ${pid} exited`);
});

test('a child that dies is replaced; SIGTERM is forwarded and running tasks finish before the supervisor exits', async () => {
  const supervisor = await h.startWorker({ WORKER_SHUTDOWN_GRACE_MS: '10000' }, ['--processes', '2']);
  await waitFor(() => childPids(supervisor, 'worker process started').length === 2, { what: 'two children' });
  await waitFor(() => logLines(supervisor).filter((l) => l.msg === 'worker started').length === 2, {
    what: 'both children to start',
  });
  const [victim] = childPids(supervisor, 'worker process started');
  process.kill(victim!, 'SIGKILL');
  await supervisor.waitForOutput(/worker process died: restarting/);
  await waitFor(() => childPids(supervisor, 'worker process started').length === 3, {
    what: 'a replacement child',
  });
  await waitFor(() => logLines(supervisor).filter((l) => l.msg === 'worker started').length === 3, {
    what: 'the replacement to start',
  });

  const id = await h.submit({ task: 'test.finish', params: { ms: 1000 } });
  await h.waitForState(id, ['active']);
  supervisor.kill('SIGTERM');
  assert.equal((await supervisor.exited).code, 0);
  const task = await h.task(id);
  assert.equal(task.state, 'completed', 'the child running it let it finish before exiting');
  for (const pid of childPids(supervisor, 'worker process started'))
    assert.ok(!isAlive(pid), `child ${pid} exited`);
});

test('children stop on their own when the supervisor is SIGKILLed', async () => {
  const supervisor = await h.startWorker({}, ['--processes', '1']);
  const [child] = childPids(supervisor, 'worker process started');
  supervisor.kill('SIGKILL');
  await supervisor.exited;
  await waitFor(() => !isAlive(child!), { what: `child ${child} to exit after its supervisor died` });
});
