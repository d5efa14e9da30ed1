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
  // Ready when every node is ok and all nodes give the same slot map (gossip has converged).
  await waitFor(
    async () => {
      const views = await Promise.all(
        nodes.map(async (n) => {
          const client = new Redis(n.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
          client.on('error', () => {});
          try {
            await client.connect();
            if (!/cluster_state:ok/.test(await client.cluster('INFO'))) return undefined;
            const slots = (await client.cluster('SLOTS')) as [number, number, [string, number]][];
            return JSON.stringify(
              slots.map(([from, to, [, port]]) => [from, to, port]).sort((a, b) => a[0]! - b[0]!),
            );
          } finally {
            client.disconnect();
          }
        }),
      );
      return views.every((v) => v !== undefined && v === views[0]);
    },
    { timeoutMs: 20_000, what: 'the cluster to be ok and agree on its slots' },
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
