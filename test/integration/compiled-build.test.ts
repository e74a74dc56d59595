/**
 * The compiled build (issue 13 item 2): `bin/isthmus.js` runs dist/, which `npm ci` makes and
 * `npm run build` remakes, with neither the TypeScript sources nor tsx. Every other test runs the
 * CLI from src/ through tsx (test/helpers/process.ts); this one brings dist/ up to date first
 * (`npm run build`, incremental) and runs a copy of what the image ships: package.json,
 * bin/isthmus.js and dist/, beside the dependencies.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupProcesses, runCli, startServerProcess, tempDir } from '../helpers/process.js';
import { withDeadline } from '../helpers/wait.js';

const repoRoot = resolve(import.meta.dirname, '../..');
const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
/** The Dockerfile by stage: what precedes the first FROM, the build stages, the image's own. */
const dockerStages = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8').split(/^FROM\s/m);
/** The NODE_OPTIONS the image runs isthmus with (README "Performance"). */
const imageNodeOptions = /^ENV NODE_OPTIONS=(\S+)$/m.exec(dockerStages.at(-1)!)?.[1];

afterAll(cleanupProcesses);

/** A directory laid out as the image's /app: package.json, bin/isthmus.js, dist/, node_modules. */
function shippedCopy(withDist: boolean): string {
  const app = tempDir('isthmus-compiled-');
  mkdirSync(join(app, 'bin'));
  cpSync(join(repoRoot, 'bin/isthmus.js'), join(app, 'bin/isthmus.js'));
  cpSync(join(repoRoot, 'package.json'), join(app, 'package.json'));
  if (withDist) cpSync(join(repoRoot, 'dist'), join(app, 'dist'), { recursive: true });
  symlinkSync(join(repoRoot, 'node_modules'), join(app, 'node_modules'), 'dir');
  return app;
}

describe('the compiled build', () => {
  let app: string;
  beforeAll(async () => {
    // `npm run build`: incremental, a few seconds when dist/ is up to date (after `npm ci`).
    const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
    await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
      cwd: repoRoot,
      timeout: 600_000,
    });
    app = shippedCopy(true);
  }, 660_000);

  const compiled = () => ({ command: [process.execPath, join(app, 'bin/isthmus.js')], cwd: app });

  it('prints the version of package.json', async () => {
    const res = await runCli(['--version'], compiled());
    expect(res).toMatchObject({ code: 0, stdout: version, stderr: '' });
  });

  it("serves as `isthmus server` with the image's NODE_OPTIONS, then exits 0 on SIGTERM", async () => {
    const server = await startServerProcess([], {
      ...compiled(),
      env: { NODE_OPTIONS: imageNodeOptions ?? '' },
    });
    expect(server.started).toMatchObject({ dataDir: server.dataDir });
    const res = await fetch(server.url('/healthz'));
    expect(res.status).toBe(200);
    server.child.kill('SIGTERM');
    const exit = await withDeadline(server.exited, { timeoutMs: 30_000, what: 'exit on SIGTERM' });
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it('without dist/, says how to make it in one line and exits 1', async () => {
    const bare = shippedCopy(false);
    const res = await runCli(['--version'], {
      command: [process.execPath, join(bare, 'bin/isthmus.js')],
      cwd: bare,
    });
    expect(res).toMatchObject({ code: 1, stdout: '' });
    expect(res.stderr).toBe('isthmus: no compiled build in dist/ (run npm ci or npm run build)\n');
  });

  it('the image ships dist/, the compiled web UI, the runtime dependencies and bin/isthmus.js: no sources, no tsx', () => {
    const image = dockerStages.at(-1)!;
    expect(dockerStages.length).toBeGreaterThan(2);
    expect(dockerStages.slice(1, -1).join('')).toMatch(/npm prune --omit=dev/);
    const copied = [...image.matchAll(/^COPY\s+(.+)$/gm)].map((m) => m[1]!);
    expect(copied).toEqual([
      '--from=build /app/package.json ./',
      '--from=build /app/node_modules ./node_modules',
      '--from=build /app/dist ./dist',
      '--from=build /app/ui/dist ./ui/dist',
      'bin/isthmus.js ./bin/',
    ]);
    expect(image).toMatch(/isthmus --version/);
    // A young generation sized for pushes to thousands of proxies, as README "Performance" says.
    expect(imageNodeOptions).toMatch(/^--max-semi-space-size=\d+$/);
    expect(readFileSync(join(repoRoot, 'README.md'), 'utf8')).toContain(
      `Docker image runs the server with \`NODE_OPTIONS=${imageNodeOptions}\``,
    );
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    expect(Object.keys(pkg.dependencies)).not.toContain('tsx');
    expect(Object.keys(pkg.devDependencies)).toContain('tsx');
  });
});
