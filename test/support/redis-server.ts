// Test harness: a private redis-server on a free port, never the shared 6379 instance.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { createRedisConnection } from '@jobbers/core';
import { Redis, type RedisOptions } from 'ioredis';
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
  const url = `redis://127.0.0.1:${chosen}`;
  const child = await launch(['--port', String(chosen), ...extraArgs], url, {});
  return { port: chosen, url, process: child, stop: () => stopChild(child) };
}

export interface TlsRedisServer extends RedisServer {
  /** The self-signed certificate the server presents: trust it with `tls: { ca }`. */
  ca: Buffer;
}

/** A redis-server that only speaks TLS, with a throwaway self-signed certificate for 127.0.0.1. */
export async function startTlsRedisServer(): Promise<TlsRedisServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'jobbers-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost'].concat([
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ]),
    { stdio: 'ignore' },
  );
  const ca = readFileSync(cert);
  const port = await freePort();
  const url = `rediss://127.0.0.1:${port}`;
  const args = ['--port', '0', '--tls-port', String(port), '--tls-cert-file', cert, '--tls-key-file', key];
  args.push('--tls-ca-cert-file', cert, '--tls-auth-clients', 'no');
  const child = await launch(args, url, { tls: { ca } }).finally(() =>
    rmSync(dir, { recursive: true, force: true }),
  );
  return { port, url, ca, process: child, stop: () => stopChild(child) };
}

/** Starts redis-server with the harness's settings plus `args` and waits until `url` answers PING. */
async function launch(args: string[], url: string, probeOptions: RedisOptions): Promise<ChildProcess> {
  const child = spawn(
    redisServerBinary(),
    ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const probe = new Redis(url, {
    ...probeOptions,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
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
      { timeoutMs: 10_000, what: `redis-server at ${url}` },
    );
  } finally {
    probe.disconnect();
  }
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** A key prefix of its own for each test, so tests never see each other's keys. */
export function uniquePrefix(label = 't'): string {
  return `jbt-${label}-${randomBytes(4).toString('hex')}`;
}

export interface RedisFixture {
  server: RedisServer;
  /** A connection to the server, for setting up and checking state. */
  redis: Redis;
}

/**
 * A private redis-server and one connection to it for the whole test file: started in `before`,
 * stopped in `after`. Read its fields inside tests. With `blocking`, the connection is core's
 * blocking one (commands wait while Redis is away), as BullMQ and the exporter need.
 */
export function useRedisServer(options: { blocking?: boolean } = {}): RedisFixture {
  const fixture = {} as RedisFixture;
  before(async () => {
    fixture.server = await startRedisServer();
    fixture.redis = options.blocking
      ? createRedisConnection(fixture.server.url, { blocking: true })
      : new Redis(fixture.server.url);
    fixture.redis.on('error', () => {});
  });
  after(async () => {
    fixture.redis?.disconnect();
    await fixture.server?.stop();
  });
  return fixture;
}
