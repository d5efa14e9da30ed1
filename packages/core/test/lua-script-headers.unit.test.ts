// Every Lua script is a registered .lua file whose header names each KEYS and ARGV entry its body
// uses and what it returns, and the registry calls it with the number of keys the header names.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type RedisScript, type ScriptArg, scripts } from '@jobbers/core';

const coreSrc = fileURLToPath(new URL('../src/', import.meta.url));
const registered = Object.values(scripts) as RedisScript<
  readonly ScriptArg[],
  readonly ScriptArg[],
  unknown
>[];

function luaFiles(dir: string, found: string[] = []): string[] {
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) luaFiles(full, found);
    else if (entry.endsWith('.lua')) found.push(path.relative(coreSrc, full).split(path.sep).join('/'));
  }
  return found;
}

/** Documented entries: index and whether it opens a range (`KEYS[2..]`). */
function documented(header: string, table: 'KEYS' | 'ARGV') {
  const entries: { index: number; range: boolean }[] = [];
  for (const match of header.matchAll(new RegExp(`^\\s*${table}\\[(\\d+)(\\.\\.)?\\]`, 'gm')))
    entries.push({ index: Number(match[1]), range: match[2] !== undefined });
  return entries;
}

function used(body: string, table: 'KEYS' | 'ARGV'): number[] {
  return [...new Set([...body.matchAll(new RegExp(`${table}\\[(\\d+)\\]`, 'g'))].map((m) => Number(m[1])))];
}

test('every .lua file under packages/core/src is in the registry, once', () => {
  const files = registered.map((s) => s.file).sort();
  assert.deepEqual(files, [...new Set(files)], 'no file registered twice');
  assert.deepEqual(luaFiles(coreSrc).sort(), files);
  const commands = registered.map((s) => s.command);
  assert.equal(new Set(commands).size, commands.length, 'each script has a command name of its own');
});

for (const [name, script] of Object.entries(scripts) as [string, (typeof registered)[number]][]) {
  test(`${name} (${script.file}): its header names every KEYS and ARGV it uses and what it returns`, () => {
    assert.equal(script.lua, readFileSync(path.join(coreSrc, script.file), 'utf8'), 'loaded from its file');
    assert.equal(script.sha, createHash('sha1').update(script.lua).digest('hex'));
    const match = /^--\[\[\n([\s\S]*?)\n\]\]\n([\s\S]*)$/.exec(script.lua);
    assert.ok(match, 'the file opens with a --[[ ... ]] header');
    const [, header, body] = match;
    assert.match(header!, /^\s*Returns /m, 'the header says what it returns');
    for (const table of ['KEYS', 'ARGV'] as const) {
      const entries = documented(header!, table);
      for (const index of used(body!, table)) {
        assert.ok(
          entries.some((e) => e.index === index || (e.range && e.index <= index)),
          `${table}[${index}] is used but not named in the header`,
        );
      }
    }
    const keys = documented(header!, 'KEYS');
    if (script.numberOfKeys === 'variable') {
      assert.ok(
        keys.some((e) => e.range),
        'a script taking any number of keys names a range (KEYS[n..])',
      );
    } else {
      assert.ok(!keys.some((e) => e.range), 'a fixed number of keys has no range');
      assert.equal(script.numberOfKeys, Math.max(0, ...keys.map((e) => e.index)), 'numberOfKeys');
    }
  });
}
