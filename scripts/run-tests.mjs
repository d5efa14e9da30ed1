// Runs every *.test.ts under packages/, examples/ and test/ with Node's test runner (through tsx).
// --unit runs only the tests that need no Redis (files under test/unit or named *.unit.test.ts).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const unitOnly = process.argv.includes('--unit');
const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));

function collect(dir, found = []) {
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules' || entry === 'dist' || entry.startsWith('.')) continue;
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) collect(full, found);
    else if (entry.endsWith('.test.ts')) found.push(full);
  }
  return found;
}

let files = ['packages', 'examples', 'test'].flatMap((d) => collect(path.join(root, d))).sort();
if (unitOnly) files = files.filter((f) => f.endsWith('.unit.test.ts'));
if (filters.length > 0) files = files.filter((f) => filters.some((flt) => f.includes(flt)));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const concurrency = process.env.JOBBERS_TEST_CONCURRENCY ?? '2';
const result = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${concurrency}`,
    // No test may hang the run: each has at most 5 minutes (the longest take about 1), and a file
    // whose tests have all finished exits even if a handle it opened is still alive (a leak is then
    // found by running that file alone: it does not exit).
    '--test-timeout=300000',
    '--test-force-exit',
    '--test-reporter=spec',
    ...files.map((f) => path.relative(root, f)),
  ],
  { cwd: root, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
