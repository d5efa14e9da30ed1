// Bundles the console (console/) into dist/console: one script, one stylesheet and the page, with
// no request to anywhere but this manager.
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const out = path.join(root, 'dist', 'console');
const require = createRequire(import.meta.url);

await mkdir(out, { recursive: true });
await build({
  entryPoints: [path.join(root, 'console', 'main.js')],
  bundle: true,
  format: 'esm',
  minify: true,
  target: ['es2022'],
  outfile: path.join(out, 'console.js'),
  legalComments: 'linked',
  logLevel: 'warning',
});
const uplotCss = await readFile(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
const ownCss = await readFile(path.join(root, 'console', 'style.css'), 'utf8');
await writeFile(path.join(out, 'console.css'), `${uplotCss}\n${ownCss}`);
await copyFile(path.join(root, 'console', 'index.html'), path.join(out, 'index.html'));
