// The drain bench's process placement: --layout is parsed and checked, and the helpers really bind
// a process's threads to CPUs and give them the idle scheduling policy (read back from /proc and
// chrt, on a process started for the purpose).
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { allCpus, pinningUnavailable, pinProcess, runWhenIdle } from '../../bench/layout.js';
import { parseBenchOptions } from '../../bench/options.js';

test('--layout defaults to both layouts, takes one or both, and refuses anything else with a clear error', () => {
  const previous = process.env.BENCH_LAYOUT;
  delete process.env.BENCH_LAYOUT;
  const layouts = (argv: string[]) => (parseBenchOptions(argv) as { layouts: string[] }).layouts;
  try {
    assert.deepEqual(layouts([]), ['pinned', 'shared']);
    assert.deepEqual(layouts(['--layout', 'shared']), ['shared']);
    assert.deepEqual(layouts(['--layout', 'shared,pinned']), ['pinned', 'shared']);
    process.env.BENCH_LAYOUT = 'shared';
    assert.deepEqual(layouts([]), ['shared']);
    assert.deepEqual(layouts(['--layout', 'pinned']), ['pinned']);
    assert.throws(
      () => parseBenchOptions(['--layout', 'diagonal']),
      /--layout \/ BENCH_LAYOUT: unknown value "diagonal" \(known: pinned, shared\)/,
    );
  } finally {
    if (previous === undefined) delete process.env.BENCH_LAYOUT;
    else process.env.BENCH_LAYOUT = previous;
  }
});

const children: ChildProcess[] = [];
after(() => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * A node process that does nothing for a minute, once it runs JavaScript: by then it runs several
 * threads (V8's and libuv's).
 */
async function idleNode(): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['-e', "process.stdout.write('ready'); setTimeout(() => {}, 60_000)"],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  children.push(child);
  await new Promise((resolve) => child.stdout!.once('data', resolve));
  return child;
}

function threadsOf(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`);
}

const unavailable = pinningUnavailable();

test('pinProcess binds every thread of a process, and binding to all CPUs undoes it', {
  skip: unavailable,
}, async () => {
  const child = await idleNode();
  const pid = child.pid!;
  pinProcess(pid, '1');
  const threads = threadsOf(pid);
  assert.ok(threads.length > 1, 'node runs several threads');
  for (const tid of threads) {
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    assert.match(status, /^Cpus_allowed_list:\s+1$/m, `thread ${tid}`);
  }
  pinProcess(pid, allCpus());
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  assert.match(status, new RegExp(`^Cpus_allowed_list:\\s+${allCpus()}$`, 'm'));
});

test('runWhenIdle gives every thread of a process the SCHED_IDLE policy', { skip: unavailable }, async () => {
  const child = await idleNode();
  const pid = child.pid!;
  const policy = (tid: string) => execFileSync('chrt', ['--pid', tid], { encoding: 'utf8' });
  assert.doesNotMatch(policy(String(pid)), /SCHED_IDLE/);
  runWhenIdle(pid);
  for (const tid of threadsOf(pid)) assert.match(policy(tid), /SCHED_IDLE/, `thread ${tid}`);
});

test('placing a process that is gone fails loudly', { skip: unavailable }, async () => {
  const child = await idleNode();
  const pid = child.pid!;
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  assert.throws(() => pinProcess(pid, '0'));
  assert.throws(() => runWhenIdle(pid));
});
