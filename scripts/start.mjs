// npm start: a manager, one worker and the example tasks against REDIS_URL (default local).
// If no Redis answers there and redis-server is on PATH, a throwaway one is started.
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const children = [];

function redisAnswers(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || 6379) });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) =>
      done(String(data).startsWith('+PONG') || String(data).startsWith('-NOAUTH')),
    );
  });
}

function hasRedisServer() {
  try {
    execFileSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function run(name, command, args, env) {
  const child = spawn(command, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefixLines = (stream, out) => {
    let buffer = '';
    stream.on('data', (chunk) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop();
      for (const line of lines) out.write(`[${name}] ${line}\n`);
    });
  };
  prefixLines(child.stdout, process.stdout);
  prefixLines(child.stderr, process.stderr);
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`[start] ${name} exited (${signal ?? code}); stopping everything`);
      stop(1);
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const child of children.reverse()) child.kill('SIGTERM');
  // A manager gives up a stop Redis cannot answer after 5 s; whatever still runs after 10 s is
  // killed rather than left running without this script.
  setTimeout(() => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    process.exit(code);
  }, 10_000).unref();
  Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null))).then(
    () => process.exit(code),
  );
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

async function main() {
  if (!(await redisAnswers(redisUrl))) {
    const { hostname, port } = new URL(redisUrl);
    const local = ['127.0.0.1', 'localhost', '::1'].includes(hostname);
    if (!local || !hasRedisServer()) {
      console.error(
        `[start] no Redis answers at ${redisUrl}.\n` +
          '        Start one (e.g. `apt-get install -y redis-server && redis-server --daemonize yes`)\n' +
          '        or point REDIS_URL at yours, then run `npm start` again.',
      );
      process.exit(1);
    }
    console.log(`[start] no Redis at ${redisUrl}: starting a throwaway redis-server on port ${port || 6379}`);
    run('redis', 'redis-server', [
      '--port',
      String(port || 6379),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
    ]);
    for (let i = 0; i < 50 && !(await redisAnswers(redisUrl)); i++)
      await new Promise((r) => setTimeout(r, 100));
  }
  const env = { REDIS_URL: redisUrl, JOBBERS_TASKS: process.env.JOBBERS_TASKS ?? '@jobbers/examples' };
  run('manager', process.execPath, ['packages/manager/dist/bin.js'], env);
  run('worker', process.execPath, ['packages/worker/dist/bin.js'], env);
  const port = process.env.MANAGER_PORT ?? '8080';
  console.log(
    `[start] manager on http://localhost:${port} (API docs /docs, metrics /metrics); worker metrics on :${process.env.WORKER_METRICS_PORT ?? 9464}`,
  );
}

main();
