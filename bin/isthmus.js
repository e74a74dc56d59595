#!/usr/bin/env node
// Entry point of the `isthmus` command: runs the compiled build in dist/, which `npm ci` makes
// (prepare: generate src/gen, then compile src/ with tsconfig.build.json) and `npm run build`
// remakes after a change. To run the TypeScript sources instead: npm run dev -- ARGS.
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  console.error('isthmus: no compiled build in dist/ (run npm ci or npm run build)');
  process.exit(1);
}
await import(main.href);
