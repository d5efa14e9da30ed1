#!/usr/bin/env node
// A local Redis Cluster made of redis-server processes: 3 masters and 3 replicas by default, on free
// ports of 127.0.0.1, in a throwaway directory. The scale-out tests start theirs through
// startLocalRedisCluster; to try Jobbers on a cluster yourself:
//
//   node scripts/local-redis-cluster.mjs [--masters 3] [--replicas 1] [--node-timeout 2000]
//
// It prints the REDIS_URL to give Jobbers (redis+cluster://...) and stops the cluster on Ctrl-C.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const run = promisify(execFile);

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function cli(port, ...args) {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args]);
  return stdout;
}

async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} ${last ?? ''}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function startNode(dir, nodeTimeoutMs) {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--daemonize', 'no', '--save', ''];
  args.push('--appendonly', 'no', '--dir', dir, '--cluster-enabled', 'yes');
  args.push('--cluster-config-file', path.join(dir, `nodes-${port}.conf`));
  args.push('--cluster-node-timeout', String(nodeTimeoutMs));
  // A lone node (a one-master cluster) learns no address of its own from peers: announce it.
  args.push('--cluster-announce-ip', '127.0.0.1');
  // A replica whose master died long ago still fails over: losing no slot beats strict freshness.
  args.push('--cluster-replica-validity-factor', '0');
  // A replica's first sync starts at once (Redis waits 5 s by default for more replicas to join it).
  args.push('--repl-diskless-sync-delay', '0');
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${output}`);
      return (await cli(port, 'PING')).trim() === 'PONG';
    },
    10_000,
    `redis-server on ${port}`,
  );
  return { port, process: child };
}

/** The slot ranges each master serves, as one node sees them (CLUSTER NODES). */
async function slotView(port) {
  return (await cli(port, 'CLUSTER', 'NODES'))
    .trim()
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => fields[2].includes('master') && fields.length > 8)
    .map((fields) => `${fields[1].split('@')[0]} ${fields.slice(8).join(' ')}`)
    .sort()
    .join('\n');
}

/**
 * Starts masters + masters * replicas redis-server processes and joins them into one cluster.
 * Resolves once every node reports cluster_state:ok, all agree on the slot map, and every master
 * has its replicas. Returns { url, nodes: [{ port, process }], stop() }.
 */
export async function startLocalRedisCluster({ masters = 3, replicas = 1, nodeTimeoutMs = 2000 } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jobbers-cluster-'));
  const nodes = [];
  const stop = async () => {
    await Promise.all(
      nodes.map(async ({ process: child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) nodes.push(await startNode(dir, nodeTimeoutMs));
    const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
    if (masters < 3) {
      // redis-cli --cluster create wants 3 masters; smaller clusters are joined by hand.
      if (replicas > 0) throw new Error('replicas need at least 3 masters');
      const per = Math.ceil(16384 / masters);
      for (const [i, node] of nodes.entries()) {
        if (i > 0) await cli(nodes[0].port, 'CLUSTER', 'MEET', '127.0.0.1', String(node.port));
        await cli(
          node.port,
          'CLUSTER',
          'ADDSLOTSRANGE',
          String(i * per),
          String(Math.min(16383, (i + 1) * per - 1)),
        );
      }
    } else
      await run('redis-cli', [
        '--cluster',
        'create',
        ...addresses,
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ]);
    await waitFor(
      async () => {
        const states = await Promise.all(nodes.map((n) => cli(n.port, 'CLUSTER', 'INFO')));
        if (!states.every((s) => /cluster_state:ok/.test(s))) return false;
        const views = await Promise.all(nodes.map((n) => slotView(n.port)));
        if (!views.every((v) => v === views[0])) return false;
        // A replica holds its master's data once its link is `connected` (its first sync done):
        // before that, a master that dies takes every write with it, acknowledged or not.
        const roles = await Promise.all(nodes.map((n) => cli(n.port, 'ROLE')));
        const synced = roles.filter((r) => r.startsWith('slave') && r.split('\n')[3]?.trim() === 'connected');
        return synced.length === masters * replicas;
      },
      30_000,
      'the cluster to be ok, agree on its slots and have its replicas in sync',
    );
    return { url: `redis+cluster://${addresses.join(',')}`, nodes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      masters: { type: 'string', default: '3' },
      replicas: { type: 'string', default: '1' },
      'node-timeout': { type: 'string', default: '2000' },
    },
  });
  const cluster = await startLocalRedisCluster({
    masters: Number(values.masters),
    replicas: Number(values.replicas),
    nodeTimeoutMs: Number(values['node-timeout']),
  });
  process.stdout.write(
    `Redis Cluster up: ${values.masters} masters, ${values.replicas} replica(s) each\n` +
      `REDIS_URL=${cluster.url}\nCtrl-C stops it and removes its files.\n`,
  );
  const shutdown = () => cluster.stop().then(() => process.exit(0));
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}
