// A private Redis Cluster of three masters for scale-out tests.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, type RedisServer, startRedisServer } from './redis-server.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

export interface RedisCluster {
  url: string;
  nodes: RedisServer[];
  stop(): Promise<void>;
}

export async function startRedisCluster(size = 3): Promise<RedisCluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jobbers-cluster-'));
  const nodes: RedisServer[] = [];
  for (let i = 0; i < size; i++) {
    const port = await freePort();
    nodes.push(
      await startRedisServer(
        [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          path.join(dir, `nodes-${port}.conf`),
          '--dir',
          dir,
        ],
        port,
      ),
    );
  }
  const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
  await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes']);
  await waitFor(
    async () => {
      const states = await Promise.all(
        nodes.map(async (n) => {
          const client = new Redis(n.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
          client.on('error', () => {});
          try {
            await client.connect();
            return /cluster_state:ok/.test(await client.cluster('INFO'));
          } finally {
            client.disconnect();
          }
        }),
      );
      return states.every(Boolean);
    },
    { timeoutMs: 20_000, what: 'the cluster to be ok' },
  );
  return {
    url: `redis+cluster://${addresses.join(',')}`,
    nodes,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
