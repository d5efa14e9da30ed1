// The client's types: params and results are checked against the task's definition at compile
// time, and the built client loads no server code.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';

const here = path.dirname(new URL(import.meta.url).pathname);
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

test('wrong params, results and options are compile errors', () => {
  const compiled = spawnSync(
    process.execPath,
    [
      tsc,
      '--noEmit',
      '--strict',
      '--module',
      'NodeNext',
      '--moduleResolution',
      'NodeNext',
      '--target',
      'ES2022',
      '--skipLibCheck',
      path.join(here, 'fixtures/typed-calls.ts'),
    ],
    { encoding: 'utf8' },
  );
  // An unused @ts-expect-error is itself an error: a check that stopped failing fails the compile.
  assert.equal(compiled.status, 0, compiled.stdout + compiled.stderr);
});

test('the built client imports nothing but ulid and its own files', () => {
  const dist = path.join(here, '../dist');
  const imports = readdirSync(dist)
    .filter((f) => f.endsWith('.js'))
    .flatMap((f) => [...readFileSync(path.join(dist, f), 'utf8').matchAll(/^import .* from '([^']+)';$/gm)])
    .map((m) => m[1]!);
  assert.ok(imports.length > 0);
  const outside = imports.filter((spec) => !spec.startsWith('./') && spec !== 'ulid');
  assert.deepEqual(outside, [], 'no @jobbers/core, node: or server module at run time');
});
