#!/usr/bin/env node
// Compiles the web UI (issue 17) into ui/dist/, which the server serves at /ui/: one bundle with
// Preact in it, the stylesheet and index.html. `npm ci` runs it (the `prepare` script).
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const here = new URL('.', import.meta.url).pathname;
const out = `${here}dist`;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [`${here}src/main.tsx`],
  outfile: `${out}/app.js`,
  bundle: true,
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
for (const file of ['index.html', 'style.css'])
  copyFileSync(`${here}src/${file}`, `${out}/${file}`);
