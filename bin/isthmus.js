#!/usr/bin/env node
// Entry point of the `isthmus` command: runs the TypeScript sources through tsx's loader so a fresh
// clone needs only `npm ci` (which generates src/gen) before `npx isthmus`.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
