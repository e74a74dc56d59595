/**
 * Runs the fuzz targets of test/fuzz/targets/ under Jazzer.js (issue 21 §4) for a bounded time.
 * Jazzer.js is installed outside the project by `scripts/install-jazzer.sh` (which `.ci/run` runs;
 * see the script for why it builds the native addon), into the user cache, or wherever
 * `ISTHMUS_JAZZER_HOME` points. A target is bundled with esbuild into one CommonJS file: Jazzer.js
 * 2.x instruments CommonJS modules as they are required, so the bundle (our code, not
 * node_modules) is what gets coverage feedback. The seed corpus (test/fuzz/corpus/<target>/, text)
 * is read only; what the fuzzer adds goes to a temporary directory.
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { importMetaOfSource } from '../helpers/bundle.js';

const repo = resolve(import.meta.dirname, '..', '..');
export const jazzerVersion = '2.1.0';
const installHint = 'bash scripts/install-jazzer.sh (or set ISTHMUS_JAZZER_HOME)';

/** The directory holding Jazzer.js's node_modules, or undefined when it is not installed. */
export function jazzerHome(): string | undefined {
  const home =
    process.env.ISTHMUS_JAZZER_HOME ??
    join(
      process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'),
      'isthmus',
      `jazzer-${jazzerVersion}`,
    );
  return existsSync(join(home, 'ready')) ? home : undefined;
}

let announced = false;

/** `describe.skipIf(skipWithoutJazzer())`: skips only outside CI; under CI a missing one throws. */
export function skipWithoutJazzer(): boolean {
  if (jazzerHome() !== undefined) return false;
  if (process.env.CI) throw new Error(`Jazzer.js not found: .ci/run installs it (${installHint})`);
  if (!announced)
    console.warn(`SKIPPING the fuzz targets: Jazzer.js is not built. To run them: ${installHint}`);
  announced = true;
  return true;
}

export interface FuzzRun {
  /** Jazzer's exit code: 0 when the time ran out without a finding. */
  readonly code: number | null;
  /** The end of Jazzer's output (the finding and its stack, the final stats). */
  readonly output: string;
  /** Inputs that crashed (libFuzzer's `crash-*` artifacts), as text. */
  readonly crashes: readonly string[];
  /** Executions of the target (libFuzzer's `stat::number_of_executed_units`). */
  readonly runs: number;
}

/** Fuzzes `target` (a file name under test/fuzz/targets/, without `.ts`) for `seconds`. */
export async function fuzzTarget(target: string, seconds: number): Promise<FuzzRun> {
  const home = jazzerHome();
  if (!home) throw new Error(`Jazzer.js not found (${installHint})`);
  const work = mkdtempSync(join(tmpdir(), `isthmus-fuzz-${target}-`));
  try {
    const bundle = join(work, `${target}.cjs`);
    await build({
      entryPoints: [join(repo, 'test', 'fuzz', 'targets', `${target}.ts`)],
      outfile: bundle,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      packages: 'external',
      plugins: [importMetaOfSource],
      logLevel: 'error',
    });
    const corpus = join(work, 'corpus');
    mkdirSync(corpus);
    const artifacts = join(work, 'artifacts');
    mkdirSync(artifacts);
    const args = [
      join(import.meta.dirname, 'jazzer-launcher.cjs'),
      home,
      bundle,
      corpus,
      join(repo, 'test', 'fuzz', 'corpus', target),
      '--',
      `-max_total_time=${seconds}`,
      `-artifact_prefix=${artifacts}/`,
      '-timeout=60',
      '-rss_limit_mb=3072',
      '-print_final_stats=1',
    ];
    const { code, output } = await run(args, join(work, 'jazzer.log'), seconds * 1000 + 180_000);
    const crashes = readdirSync(artifacts).map((f) => readFileSync(join(artifacts, f), 'utf8'));
    const runs = Number(/stat::number_of_executed_units:\s*(\d+)/.exec(output)?.[1] ?? 0);
    return { code, output: output.slice(-6000), crashes, runs };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Runs node with `args` (bundled deps resolve from the project's node_modules) until `deadlineMs`.
 * Output goes to a file, not a pipe: libFuzzer writes from its own thread to a descriptor Node
 * made non-blocking, and a pipe the reader drains too slowly drops its lines.
 */
function run(
  args: readonly string[],
  log: string,
  deadlineMs: number,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolveRun, reject) => {
    const fd = openSync(log, 'w');
    const child = spawn(process.execPath, args, {
      cwd: repo,
      env: { ...process.env, NODE_PATH: join(repo, 'node_modules') },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    const output = () => readFileSync(log, 'utf8');
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`jazzer did not finish within ${deadlineMs} ms:\n${output().slice(-4000)}`));
    }, deadlineMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, output: output() });
    });
  });
}
