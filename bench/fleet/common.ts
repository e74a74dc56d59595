/** Option parsing, memory and load figures shared by the fleet benchmarks. */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { MemorySample } from '../ads-fanout/stats.js';
import { FleetPool } from './pool.js';
import { checkConsistency, describe, FleetServer, type Consistency } from './server.js';
import { FleetViews, nodeId, type Topology } from './views.js';

export type Options<K extends string> = Record<K, number>;

/** Parses `--name N` options (positive integers) with their defaults; exits 2 on a bad one. */
export function options<K extends string>(
  usage: string,
  defaults: Record<K, number>,
  limits: Partial<Record<K, number>> = {},
): Options<K> {
  const spec = Object.fromEntries(
    Object.entries(defaults).map(([k, v]) => [k, { type: 'string' as const, default: String(v) }]),
  );
  try {
    const { values } = parseArgs({ args: process.argv.slice(2), options: spec });
    const out = {} as Options<K>;
    for (const key of Object.keys(defaults) as K[]) {
      const raw = String(values[key]);
      const n = Number(raw);
      const limit = limits[key] ?? 1_000_000;
      if (!Number.isInteger(n) || n < 1 || n > limit)
        throw new Error(`--${key} must be an integer from 1 to ${limit}, got "${raw}"`);
      out[key] = n;
    }
    return out;
  } catch (err) {
    console.error(`${(err as Error).message}\nusage: ${usage}`);
    process.exit(2);
  }
}

export const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
export const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
export const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');

export function memLine(label: string, m: MemorySample): string {
  return `${label.padEnd(28)} rss ${mb(m.rss).padStart(9)}  heap ${mb(m.heapUsed).padStart(9)}  external ${mb(m.external).padStart(8)}`;
}

/**
 * Connections the kernel dropped because a listen queue was full, over the whole host (Linux
 * `TcpExt: ListenOverflows`; undefined elsewhere). Each one is a client waiting out TCP's SYN
 * retransmission (1 s, 3 s, 7 s, …).
 */
export function listenOverflows(): number | undefined {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const at = lines.findIndex((l) => l.startsWith('TcpExt:'));
    const names = lines[at]?.split(/\s+/) ?? [];
    const values = lines[at + 1]?.split(/\s+/) ?? [];
    const i = names.indexOf('ListenOverflows');
    return i > 0 ? Number(values[i]) : undefined;
  } catch {
    return undefined;
  }
}

/** (after − before) / before, as a signed percentage. */
export const change = (before: number, after: number) =>
  `${after >= before ? '+' : ''}${(((after - before) / before) * 100).toFixed(1)} %`;

/** A server with every view published and `proxies` fake proxies connected and synced. */
export interface Fleet {
  readonly server: FleetServer;
  readonly views: FleetViews;
  readonly pool: FleetPool;
  readonly ids: readonly string[];
  /** From the first connection until every stream was admitted and every response ACKed (ms). */
  readonly syncMs: number;
}

export async function startFleet(
  topology: Topology,
  workers: number,
  perConnection: number,
): Promise<Fleet> {
  const server = new FleetServer(topology.proxies + 100);
  await server.start();
  const views = new FleetViews(server.cache, topology);
  views.publishAll();
  const pool = await FleetPool.start(Math.min(workers, topology.proxies));
  const ids = Array.from({ length: topology.proxies }, (_, i) => nodeId(i));
  const t0 = performance.now();
  await pool.connect(server.address, ids, perConnection);
  await server.settled(ids.length, 300_000, 'every proxy to connect and ACK its view');
  await pool.all({ kind: 'all-connected', timeoutMs: 60_000 });
  const syncMs = performance.now() - t0;
  const c = await pool.counters(true);
  console.log(
    `initial sync: ${(syncMs / 1000).toFixed(1)} s (${c.reconnects} reconnects, ${c.streamErrors} stream errors on the way${c.lastError ? `, last: ${c.lastError}` : ''})`,
  );
  return { server, views, pool, ids, syncMs };
}

/** Stops the fake proxies (or kills their workers), then the server: the last step of each bench. */
export async function stopFleet(fleet: Fleet | undefined): Promise<void> {
  if (!fleet) return;
  await fleet.pool.close().catch(() => fleet.pool.stop());
  await fleet.server.stop();
}

/** Runs a fleet bench: exit 0 when it is done, 1 with the stack when it throws. */
export function runBench(name: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`bench:${name} failed: ${(err as Error)?.stack ?? String(err)}`);
      process.exit(1);
    },
  );
}

/**
 * Waits until every stream is admitted and ACKed and every proxy has been answered, then compares
 * what the proxies hold with their views; polls again (every second, until the deadline) while
 * they differ, since a proxy may still be between a response and its follow-up request.
 */
export async function consistentWithin(
  fleet: Fleet,
  timeoutMs: number,
): Promise<{ consistency: Consistency; ms: number }> {
  const t0 = performance.now();
  const deadline = t0 + timeoutMs;
  for (;;) {
    const left = () => Math.max(1, deadline - performance.now());
    await fleet.server.settled(fleet.ids.length, left(), 'every proxy to reconnect and ACK');
    await fleet.pool.all({ kind: 'all-connected', timeoutMs: left() });
    const consistency = checkConsistency(fleet.server.cache, await fleet.pool.held());
    const ms = performance.now() - t0;
    if (consistency.inconsistent === 0 || performance.now() > deadline) return { consistency, ms };
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

export { describe };
