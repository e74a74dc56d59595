import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { ApiClient } from '../../src/api/client.js';
import { fetchXdsTls } from '../../src/api/xds-tls-client.js';
import type { XdsClientTls } from '../../src/xds/tls.js';
import { withDeadline } from './wait.js';

/** Spawns the real `isthmus` CLI for integration tests. */

const repoRoot = resolve(import.meta.dirname, '../..');

/**
 * The `isthmus` command as tests run it, never a possibly stale dist/: under vitest the bundle of
 * the sources its global setup built (test/helpers/cli-bundle.ts, half the CPU per start), else
 * (benchmarks) the TypeScript sources through tsx (`bin/run-ts.js`).
 * test/integration/compiled-build.test.ts runs `bin/isthmus.js` over a fresh build.
 */
const cliBundle = process.env.TEST_ISTHMUS_CLI_BUNDLE;
export const cliCommand: readonly string[] = cliBundle
  ? [process.execPath, cliBundle]
  : [process.execPath, join(repoRoot, 'bin/run-ts.js'), join(repoRoot, 'src/cli/main.ts')];

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface CliProcess {
  readonly child: ChildProcess;
  /** stdout split into lines (JSON log lines for `server`), growing while the process runs. */
  readonly stdoutLines: string[];
  /** Calls `fn` for every stdout line, those already seen included. */
  onLine(fn: (line: string) => void): void;
  stderr(): string;
  /** Resolves once the process has exited and its output is fully read. */
  readonly exited: Promise<ExitInfo>;
}

export interface ServerProcess extends CliProcess {
  readonly httpPort: number;
  readonly xdsPort: number;
  readonly peeringPort: number;
  readonly dataDir: string;
  /** The parsed `server started` log line. */
  readonly started: Readonly<Record<string, unknown>>;
  url(path: string): string;
  /** How to verify its xDS port, as `GET /v1/xds/server` says now; undefined: plaintext. */
  xdsTls(): Promise<XdsClientTls | undefined>;
}

export interface SpawnOptions {
  readonly env?: Readonly<Record<string, string>>;
  /** The command that is `isthmus` (default `cliCommand`) and the directory it runs in. */
  readonly command?: readonly string[];
  readonly cwd?: string;
  readonly timeoutMs?: number;
}

export interface ServerProcessOptions extends SpawnOptions {
  /** Reuse a data dir (a restart); default: a fresh one. */
  readonly dataDir?: string;
}

const running = new Set<ChildProcess>();
const tempDirs: string[] = [];

/** A fresh temporary directory, removed by `cleanupProcesses`. */
export function tempDir(prefix = 'isthmus-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** The environment of a child: the test runner's, minus any ISTHMUS_* setting, plus `env`. */
function childEnv(env: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('ISTHMUS_')),
  );
  return { ...base, ...env };
}

export function spawnCli(args: readonly string[], opts: SpawnOptions = {}): CliProcess {
  const [command, ...prefix] = opts.command ?? cliCommand;
  const child = spawn(command!, [...prefix, ...args], {
    cwd: opts.cwd ?? repoRoot,
    env: childEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const stdoutLines: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  let stderr = '';
  createInterface({ input: child.stdout! }).on('line', (line) => {
    stdoutLines.push(line);
    for (const fn of listeners) fn(line);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.on('exit', () => running.delete(child));
  const exited = new Promise<ExitInfo>((resolveExit) =>
    child.on('close', (code, signal) => resolveExit({ code, signal })),
  );
  const onLine = (fn: (line: string) => void): void => {
    stdoutLines.forEach(fn);
    listeners.push(fn);
  };
  return { child, stdoutLines, onLine, stderr: () => stderr, exited };
}

/**
 * A bound on one CLI run or server start that only catches hangs: a start takes about a second
 * on an idle machine and has taken over 20 s on one running two suites at once.
 */
const processDeadlineMs = 60_000;

/** Runs the CLI to completion (bounded by `timeoutMs`, default 60 s). */
export async function runCli(
  args: readonly string[],
  opts: SpawnOptions = {},
): Promise<ExitInfo & { stdout: string; stderr: string }> {
  const proc = spawnCli(args, opts);
  const exit = await withDeadline(proc.exited, {
    timeoutMs: opts.timeoutMs ?? processDeadlineMs,
    what: `isthmus ${args.join(' ')} to exit`,
  });
  return { ...exit, stdout: proc.stdoutLines.join('\n'), stderr: proc.stderr() };
}

/**
 * Starts `isthmus server` on 127.0.0.1 port 0 (HTTP and xDS) with a fresh data dir, and resolves
 * once its `server started` line reports the bound ports.
 */
export async function startServerProcess(
  args: readonly string[] = [],
  opts: ServerProcessOptions = {},
): Promise<ServerProcess> {
  const dataDir = opts.dataDir ?? tempDir('isthmus-data-');
  const fullArgs = [
    'server',
    '--http-addr',
    '127.0.0.1:0',
    '--xds-addr',
    '127.0.0.1:0',
    '--peering-addr',
    '127.0.0.1:0',
    '--data-dir',
    dataDir,
    ...args,
  ];
  const proc = spawnCli(fullArgs, opts);
  const started = await withDeadline(startedLine(proc), {
    timeoutMs: opts.timeoutMs ?? processDeadlineMs,
    what: 'the "server started" log line',
  }).catch((err: unknown) => {
    proc.child.kill('SIGKILL');
    throw new Error(
      `${(err as Error).message}; stderr: ${proc.stderr()}; stdout: ${proc.stdoutLines.join('\n')}`,
    );
  });
  const httpPort = Number(started.httpPort);
  const xdsPort = Number(started.xdsPort);
  const peeringPort = Number(started.peeringPort);
  return {
    ...proc,
    httpPort,
    xdsPort,
    peeringPort,
    dataDir,
    started,
    url: (path) => `http://127.0.0.1:${httpPort}${path}`,
    xdsTls: () => fetchXdsTls(new ApiClient(`http://127.0.0.1:${httpPort}`)),
  };
}

function startedLine(proc: CliProcess): Promise<Record<string, unknown>> {
  return new Promise((resolveLine, reject) => {
    const check = (line: string): void => {
      const parsed = parseJsonLine(line);
      if (parsed?.msg === 'server started') resolveLine(parsed);
    };
    proc.onLine(check);
    void proc.exited.then((exit) =>
      reject(new Error(`server exited before starting (code ${exit.code}, signal ${exit.signal})`)),
    );
  });
}

export function parseJsonLine(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A port that was free a moment ago on 127.0.0.1 (for a server that must come back on the same
 * port).
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
  return port;
}

/**
 * Kills every child still running (SIGKILL), waits for them, removes temp dirs. For
 * afterEach/afterAll.
 */
export async function cleanupProcesses(): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map((child) => {
      const gone = new Promise<void>((resolveGone) => child.once('exit', () => resolveGone()));
      child.kill('SIGKILL');
      return withDeadline(gone, { timeoutMs: 5_000, what: `child ${child.pid} to die` });
    }),
  );
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
