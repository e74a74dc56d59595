#!/usr/bin/env node
// Generates src/gen/ from proto/ with buf + ts-proto. Runs from `npm ci` (prepare); the output is
// git-ignored and never edited by hand.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
rmSync(new URL('../src/gen', import.meta.url), { recursive: true, force: true });
const started = Date.now();
execFileSync(new URL('../node_modules/.bin/buf', import.meta.url).pathname, ['generate'], {
  cwd: root,
  stdio: 'inherit',
});
console.log(`src/gen generated in ${Date.now() - started} ms`);
