// The versions and machine a bench ran on, printed beside its figures.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';

const require = createRequire(import.meta.url);

function packageVersion(name: string): string {
  try {
    let dir = path.dirname(require.resolve(name));
    while (dir !== path.dirname(dir)) {
      try {
        const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
        if (pkg.name === name) return pkg.version;
      } catch {}
      dir = path.dirname(dir);
    }
  } catch {}
  return 'unknown';
}

function gitRevision(): string {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'packages', 'examples'], {
      encoding: 'utf8',
    }).trim();
    return dirty ? `${rev} (+ uncommitted changes in packages/examples)` : rev;
  } catch {
    return 'unknown';
  }
}

export async function describeEnvironment(redis: Redis): Promise<string[]> {
  const info = await redis.info('server');
  const redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  const cpus = os.cpus();
  return [
    `jobbers     ${gitRevision()}`,
    `node        ${process.version}`,
    `bullmq      ${packageVersion('bullmq')}`,
    `ioredis     ${packageVersion('ioredis')}`,
    `autocannon  ${packageVersion('autocannon')}`,
    `redis       ${redisVersion} (private redis-server, loopback, no persistence)`,
    `cpus        ${cpus.length} x ${cpus[0]?.model.trim() ?? 'unknown'}`,
    `os          ${os.type()} ${os.release()} ${os.arch()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    `load avg    ${describeLoad()}`,
  ];
}

/** The 1/5/15-minute load averages: the bench wants an idle machine, so it says when it had none. */
export function describeLoad(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
}

/** Other processes competing for the CPUs skew absolute figures (ratios less so: runs interleave). */
export function machineIsBusy(): boolean {
  return os.loadavg()[0]! > 0.5 * os.cpus().length;
}
