// Test harness: a private redis-server on a free port, never the shared 6379 instance.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { waitFor } from './wait.js';

export interface RedisServer {
  port: number;
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function redisServerBinary(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'redis-server is not installed: run `apt-get install -y redis-server` (.ci/run does this)',
    );
  }
}

export async function startRedisServer(extraArgs: string[] = [], port?: number): Promise<RedisServer> {
  const chosen = port ?? (await freePort());
  const child = spawn(
    redisServerBinary(),
    [
      '--port',
      String(chosen),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const url = `redis://127.0.0.1:${chosen}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`redis-server exited: ${output}`);
        try {
          if (probe.status !== 'ready') await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch (error) {
          if ((error as Error).message.startsWith('redis-server exited')) throw error;
          probe.disconnect();
          return false;
        }
      },
      { timeoutMs: 10_000, what: `redis-server on port ${chosen}` },
    );
  } finally {
    probe.disconnect();
  }
  return {
    port: chosen,
    url,
    process: child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A key prefix of its own for each test, so tests never see each other's keys. */
export function uniquePrefix(label = 't'): string {
  return `jbt-${label}-${randomBytes(4).toString('hex')}`;
}

export interface RedisFixture {
  server: RedisServer;
  /** A plain connection to the server, for setting up and checking state. */
  redis: Redis;
}

/**
 * A private redis-server and one connection to it for the whole test file: started in `before`,
 * stopped in `after`. Read its fields inside tests.
 */
export function useRedisServer(): RedisFixture {
  const fixture = {} as RedisFixture;
  before(async () => {
    fixture.server = await startRedisServer();
    fixture.redis = new Redis(fixture.server.url);
    fixture.redis.on('error', () => {});
  });
  after(async () => {
    fixture.redis?.disconnect();
    await fixture.server?.stop();
  });
  return fixture;
}
