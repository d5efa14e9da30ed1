// bench/ runs through tsx, which strips types without checking them: a change to a package's API
// would break `npm run bench` unnoticed until someone runs it. This compiles it as tsc sees it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const benchProject = fileURLToPath(new URL('../../bench/tsconfig.json', import.meta.url));

test('bench/ type-checks against the packages as built', () => {
  const compiled = spawnSync(process.execPath, [tsc, '-p', benchProject, '--noEmit'], { encoding: 'utf8' });
  assert.equal(compiled.status, 0, compiled.stdout + compiled.stderr);
});
