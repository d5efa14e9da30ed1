// A private Redis Cluster for scale-out tests, started by scripts/local-redis-cluster.mjs (the script
// users run to try Jobbers on a cluster): three masters, with replicas when a test needs failover.
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
// @ts-expect-error the script is plain JavaScript, without declarations
import { startLocalRedisCluster } from '../../scripts/local-redis-cluster.mjs';

export interface RedisClusterNode {
  port: number;
  url: string;
  process: ChildProcess;
}

export interface RedisCluster {
  url: string;
  nodes: RedisClusterNode[];
  stop(): Promise<void>;
}

export async function startRedisCluster(
  options: { masters?: number; replicas?: number; nodeTimeoutMs?: number } = {},
): Promise<RedisCluster> {
  const started = (await startLocalRedisCluster({ replicas: 0, ...options })) as {
    url: string;
    nodes: { port: number; process: ChildProcess }[];
    stop(): Promise<void>;
  };
  return {
    url: started.url,
    nodes: started.nodes.map((n) => ({ ...n, url: `redis://127.0.0.1:${n.port}` })),
    stop: started.stop,
  };
}

/** Runs one command on one node (not through cluster routing), e.g. CLUSTER KEYSLOT or INFO. */
export async function onNode<T>(
  node: RedisClusterNode,
  command: string,
  ...args: (string | number)[]
): Promise<T> {
  const client = new Redis(node.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.call(command, ...args)) as T;
  } finally {
    client.disconnect();
  }
}

/** The port of the master serving a slot, from CLUSTER SLOTS as `node` sees it. */
export async function masterOfSlot(node: RedisClusterNode, slot: number): Promise<number> {
  const ranges = await onNode<[number, number, [string, number]][]>(node, 'CLUSTER', 'SLOTS');
  const range = ranges.find(([from, to]) => slot >= from && slot <= to);
  if (!range) throw new Error(`no master serves slot ${slot}`);
  return range[2][1];
}
