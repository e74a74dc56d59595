/**
 * A real Envoy process of the demo: started from a bootstrap file (it holds the proxy token, so it
 * is written 0600 in the demo's private directory), with its admin on 127.0.0.1 at a port Envoy
 * picks (read back through `--admin-address-path`), a base id of its own (`--use-dynamic-base-id`,
 * so several Envoys and any other Envoy on the machine can run side by side) and its output in a
 * log file. Envoy's admin endpoints are what the demo reports from: `/ready`, `/stats`,
 * `/clusters`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DemoEnvoy {
  /** The proxy ID it runs as (node.id). */
  readonly name: string;
  readonly pid: number;
  /** `http://127.0.0.1:<admin port>`. */
  readonly adminUrl: string;
  readonly logFile: string;
  /** Exit code or signal once it has exited, else undefined. */
  exited(): string | undefined;
  /** The last `lines` lines of its log. */
  logTail(lines?: number): string[];
  /** GET on its admin interface; rejects on a non-2xx answer. */
  admin(path: string): Promise<string>;
  /** `/stats?format=json` as name → value (counters and gauges), optionally filtered by a regex. */
  stats(filter?: string): Promise<ReadonlyMap<string, number>>;
  /** SIGTERM, SIGKILL after 5 s; resolves once it has exited. */
  stop(): Promise<void>;
}

export interface EnvoyLaunch {
  readonly name: string;
  readonly binary: string;
  readonly bootstrap: unknown;
  /** A private directory for its bootstrap, admin address file and log. */
  readonly dir: string;
}

/**
 * Envoys of this process still running, with their exit: the exit hook kills them if the demo exits
 * without stopping them.
 */
const live = new Map<ChildProcess, Promise<void>>();
let exitHookInstalled = false;

function killLiveOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live.keys()) child.kill('SIGKILL');
  });
}

/**
 * Stops every Envoy of this process still running, those still starting too (Ctrl-C before their
 * admin listener was up, when nothing owns them yet): SIGTERM, SIGKILL after 5 s; resolves once all
 * have exited, so the demo never exits with one of them still alive.
 */
export async function stopAllDemoEnvoys(): Promise<void> {
  await Promise.all(
    [...live].map(async ([child, exited]) => {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    }),
  );
}

/** Starts Envoy and resolves once its admin address is known (not yet LIVE). */
export async function startDemoEnvoy(launch: EnvoyLaunch, timeoutMs = 30_000): Promise<DemoEnvoy> {
  const { name, dir } = launch;
  const config = join(dir, `${name}.bootstrap.json`);
  const adminPath = join(dir, `${name}.admin-address`);
  const logFile = join(dir, `${name}.log`);
  writeFileSync(config, JSON.stringify(launch.bootstrap), { mode: 0o600 });
  const args = [
    '-c',
    config,
    '--use-dynamic-base-id',
    '--admin-address-path',
    adminPath,
    '-l',
    'info',
    '--drain-time-s',
    '1',
    '--parent-shutdown-time-s',
    '2',
  ];
  const log = openSync(logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(launch.binary, args, { stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
  killLiveOnExit();
  let exit: string | undefined;
  const closed = new Promise<void>((resolve) => {
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      exit ??= signal ? `signal ${signal}` : `code ${code}`;
      live.delete(child);
      resolve();
    };
    child.once('exit', done);
    child.once('error', (err) => {
      exit ??= err.message;
      done(null, null);
    });
  });
  live.set(child, closed);
  const logTail = (lines = 20) =>
    existsSync(logFile) ? readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines) : [];
  const stop = async () => {
    if (exit !== undefined) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await closed;
    clearTimeout(killer);
  };
  const address = await readAdminAddress(adminPath, () => exit, timeoutMs).catch(
    async (err: unknown) => {
      await stop();
      throw new EnvoyFailure(name, `${(err as Error).message}`, logTail());
    },
  );
  const adminUrl = `http://${address}`;
  const admin = async (path: string) => {
    const res = await fetch(`${adminUrl}${path}`, { signal: AbortSignal.timeout(5_000) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${name} admin ${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
    return text;
  };
  return {
    name,
    pid: child.pid ?? -1,
    adminUrl,
    logFile,
    exited: () => exit,
    logTail,
    admin,
    stats: async (filter) =>
      parseStats(
        await admin(`/stats?format=json${filter ? `&filter=${encodeURIComponent(filter)}` : ''}`),
      ),
    stop,
  };
}

/** Names the Envoy and carries the end of its log, for the demo's failure message. */
export class EnvoyFailure extends Error {
  constructor(
    readonly envoy: string,
    reason: string,
    readonly logLines: readonly string[],
  ) {
    super(`envoy ${envoy}: ${reason}`);
  }
}

async function readAdminAddress(
  path: string,
  exited: () => string | undefined,
  timeoutMs: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = exited();
    if (why !== undefined) throw new Error(`exited (${why}) before its admin listener was up`);
    const address = existsSync(path) ? readFileSync(path, 'utf8').trim() : '';
    if (address) return address;
    if (Date.now() > deadline) throw new Error(`no admin address within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function parseStats(text: string): ReadonlyMap<string, number> {
  const parsed = JSON.parse(text) as { stats?: { name?: string; value?: number }[] };
  const out = new Map<string, number>();
  for (const s of parsed.stats ?? [])
    if (s.name !== undefined && typeof s.value === 'number') out.set(s.name, s.value);
  return out;
}
