// Copies the Lua scripts of the package it runs in (every src/**/*.lua) to the same place under
// dist/, where the compiled script registry reads them. Run by the package's build after tsc.
import { cpSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const source = path.resolve('src');
const target = path.resolve('dist');

function copyLua(dir) {
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) copyLua(full);
    else if (entry.endsWith('.lua')) cpSync(full, path.join(target, path.relative(source, full)));
  }
}

copyLua(source);
