// Debian's chromium driven by playwright-core, for the console's browser tests. Where no chromium can
// be found the tests are skipped with a loud message (.ci/run installs it with apt).
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { repoRoot } from './processes.js';

const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(
  (p): p is string => Boolean(p),
);

/** The chromium executable, or undefined (with the reason printed once) when there is none. */
export function findChromium(): string | undefined {
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    process.stderr.write(
      `\n${'!'.repeat(78)}\n!! SKIPPING the console's browser tests: no chromium at ${candidates.join(', ')}.\n!! Install Debian's chromium (apt-get install -y chromium) or set CHROMIUM_PATH.\n${'!'.repeat(78)}\n\n`,
    );
  }
  return found;
}

export async function launchChromium(executablePath: string): Promise<Browser> {
  return chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** Where the browser tests save their screenshots (gitignored). */
export function screenshotDir(): string {
  const dir = path.join(repoRoot, 'artifacts', 'screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}
