// A client generated from the served /docs/json by a standard generator (openapi-typescript) is typed
// per task: tsc accepts a submit of example.sleep with {ms: 5} and rejects {ms: "5"}.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import openapiTS, { astToString } from 'openapi-typescript';
import { startTestManager, type TestManager } from '../../../test/support/manager.js';
import { type RedisServer, startRedisServer, uniquePrefix } from '../../../test/support/redis-server.js';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

let redis: RedisServer;
let manager: TestManager;
let dir: string;

before(async () => {
  redis = await startRedisServer();
  manager = await startTestManager({ redisUrl: redis.url, prefix: uniquePrefix('client-types') });
  dir = await mkdtemp(path.join(tmpdir(), 'jobbers-client-types-'));
});
after(async () => {
  await manager?.close();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const badCall = `// @ts-expect-error ms must be a number
submit({ task: 'example.sleep', params: { ms: '5' } });`;

const client = (bad: string) => `import type { operations, paths } from './api.js';

type Submission = operations['submitTask']['requestBody']['content']['application/json'];
type Submitted = paths['/v1/tasks']['post']['responses'][201]['content']['application/json'];
declare function submit(body: Submission): Promise<Submitted>;

export async function run(): Promise<string> {
  const { id, state } = await submit({ task: 'example.sleep', params: { ms: 5 } });
  await submit({ task: 'example.echo', params: { hello: 'world' } });
  await submit({ task: 'example.flaky', params: { failTimes: 1 }, priority: 1, retries: 2 });
  ${bad}
  return \`\${id} \${state}\`;
}
`;

function typeCheck(): { status: number | null; output: string } {
  const result = spawnSync(
    process.execPath,
    [
      tsc,
      '--noEmit',
      '--strict',
      '--target',
      'es2022',
      '--module',
      'nodenext',
      '--skipLibCheck',
      'client.ts',
    ],
    { cwd: dir, encoding: 'utf8' },
  );
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

test('types generated from /docs/json accept {ms: 5} and reject {ms: "5"} for example.sleep', async () => {
  const document = (await manager.request('GET', '/docs/json')).body;
  await writeFile(path.join(dir, 'api.d.ts'), astToString(await openapiTS(document)));
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }));

  await writeFile(path.join(dir, 'client.ts'), client(badCall));
  const checked = typeCheck();
  assert.equal(checked.status, 0, checked.output);

  // Without the expectation the bad call is a compile error, and the error is about ms.
  await writeFile(path.join(dir, 'client.ts'), client(badCall.split('\n')[1]!));
  const unchecked = typeCheck();
  assert.notEqual(unchecked.status, 0, 'tsc accepted {ms: "5"}');
  assert.match(
    unchecked.output,
    /types of 'params\.ms' are incompatible[\s\S]*'string' is not assignable to type 'number'/,
  );
});
