/**
 * vitest's global setup: bundles `src/cli/main.ts` with esbuild once per run (and again before
 * each rerun in watch mode), and names the bundle in `TEST_ISTHMUS_CLI_BUNDLE`, which
 * `cliCommand` (test/helpers/process.ts) then runs. The tests start the `isthmus` command hundreds
 * of times; through tsx's loader each start costs about twice the CPU of the bundle (a server
 * start 1.3 s against 2.4 s, `--version` 0.13 s against 0.4 s), which on a 2-core machine running
 * two test files at a time is what the other file waits for. The bundle is built from the
 * sources of this run, so a test never runs a stale dist/ either;
 * test/integration/compiled-build.test.ts runs the real build.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import type { TestProject } from 'vitest/node';
import { importMetaOfSource } from './bundle.js';

export const cliBundleEnv = 'TEST_ISTHMUS_CLI_BUNDLE';

const repoRoot = resolve(import.meta.dirname, '../..');

export default async function setup(project: TestProject): Promise<() => void> {
  // Inside the repository, so that the bundle's imports of packages resolve from node_modules.
  const parent = join(repoRoot, 'node_modules', '.cache', 'isthmus-test-cli');
  mkdirSync(parent, { recursive: true });
  // A run that was killed left its bundle behind; one a day old belongs to no run.
  for (const old of readdirSync(parent)) {
    const path = join(parent, old);
    if (Date.now() - statSync(path).mtimeMs > 86_400_000)
      rmSync(path, { recursive: true, force: true });
  }
  const dir = mkdtempSync(join(parent, 'run-'));
  const bundle = () =>
    build({
      entryPoints: [join(repoRoot, 'src', 'cli', 'main.ts')],
      outdir: dir,
      outExtension: { '.js': '.mjs' },
      bundle: true,
      // The CLI imports what a command needs when it runs (the server, the store): one chunk per
      // such import keeps `isthmus acl token create` from loading the server.
      splitting: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      plugins: [importMetaOfSource],
      logLevel: 'error',
    });
  await bundle();
  process.env[cliBundleEnv] = join(dir, 'main.mjs');
  project.onTestsRerun(async () => {
    await bundle();
  });
  return () => rmSync(dir, { recursive: true, force: true });
}
