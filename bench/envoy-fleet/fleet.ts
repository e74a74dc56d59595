/**
 * The Envoy fleet: one real Envoy per `web` sidecar, bootstrapped by isthmus's own bootstrap
 * builder (bootstrapFor: the document `isthmus envoy bootstrap` prints, with a fresh proxy token)
 * and started by the real-Envoy test harness, admin on 127.0.0.1:0.
 */
import { bootstrapFor } from '../../test/envoy/mesh.js';
import {
  type EnvoyProcess,
  rejectionStats,
  rejections,
  startEnvoy,
  waitHealthy,
} from '../../test/envoy/harness.js';
import type { MeshProcess } from '../../test/helpers/mesh-server.js';
import { processCpuMs, procKb, type ServerUnderTest } from './server-process.js';

/**
 * Envoy's flags in the fleet. One worker thread (`--concurrency 1`): the fleet carries no traffic
 * and shares 2 cores, and Envoy's default is a worker per core. (The harness runs Envoy without hot
 * restart.) The `config` logger at debug level with an epoch timestamp (`%E.%e`) logs, at
 * millisecond resolution on the machine's clock, when each xDS update was accepted: Envoy's own
 * apply time.
 */
export const envoyArgs = [
  '--concurrency',
  '1',
  '--component-log-level',
  'config:debug',
  '--log-format',
  '[%E.%e][%l][%n] %v',
] as const;

export interface FleetStart {
  readonly envoys: readonly EnvoyProcess[];
  /** From the first spawn until the last Envoy was LIVE with nothing rejected or warming (ms). */
  readonly totalMs: number;
  /** Per Envoy: from its spawn until it was LIVE with nothing rejected or warming (ms). */
  readonly liveMs: readonly number[];
}

/** Starts an Envoy for each sidecar, `parallel` at a time, each waited for until healthy. */
export async function startFleet(
  node: MeshProcess,
  sidecars: readonly string[],
  datacenter: string,
  parallel: number,
  progress: (up: number) => void,
): Promise<FleetStart> {
  const envoys: EnvoyProcess[] = new Array(sidecars.length);
  const liveMs: number[] = new Array(sidecars.length);
  let next = 0;
  let up = 0;
  const start = Date.now();
  const starter = async (): Promise<void> => {
    for (let i = next++; i < sidecars.length; i = next++) {
      const bootstrap = await bootstrapFor(node, sidecars[i]!, 'connect-proxy', datacenter);
      const spawned = Date.now();
      envoys[i] = await startEnvoy(sidecars[i]!, bootstrap, { args: envoyArgs });
      await waitHealthy(envoys[i]!, 120_000);
      liveMs[i] = Date.now() - spawned;
      progress(++up);
    }
  };
  await Promise.all(Array.from({ length: parallel }, starter));
  return { envoys, totalMs: Date.now() - start, liveMs };
}

export interface EnvoyFootprint {
  /**
   * Per Envoy, bytes: resident (shared pages of the binary included), proportional share, private.
   */
  readonly rss: readonly number[];
  readonly pss: readonly number[];
  readonly private: readonly number[];
}

/** What each Envoy process holds in memory now. */
export function footprint(envoys: readonly EnvoyProcess[]): EnvoyFootprint {
  const pids = envoys.map((e) => e.child.pid!);
  return {
    rss: pids.map((p) => procKb(p, 'status', 'VmRSS')),
    pss: pids.map((p) => procKb(p, 'smaps_rollup', 'Pss')),
    private: pids.map(
      (p) =>
        procKb(p, 'smaps_rollup', 'Private_Clean') + procKb(p, 'smaps_rollup', 'Private_Dirty'),
    ),
  };
}

/**
 * CPU all running Envoys used together so far (ms); one that exited counts no more (see `exited`).
 */
export function fleetCpuMs(envoys: readonly EnvoyProcess[]): number {
  return envoys.reduce(
    (sum, e) =>
      sum +
      (e.child.exitCode === null && e.child.signalCode === null ? processCpuMs(e.child.pid!) : 0),
    0,
  );
}

/**
 * CPU spent in a window (ms): by the server, by all Envoys together, by this process (the poller).
 */
export interface CpuSpent {
  /** The window's length (ms). */
  readonly ms: number;
  readonly server: number;
  readonly envoys: number;
  readonly poller: number;
}

/**
 * Starts counting CPU; the returned function ends the window. Reading every Envoy's /proc entry
 * takes a while in a large fleet, so it is done outside the server's part of the window.
 */
export async function cpuWindow(
  server: ServerUnderTest,
  envoys: readonly EnvoyProcess[],
): Promise<() => Promise<CpuSpent>> {
  const envoys0 = fleetCpuMs(envoys);
  const poller0 = process.cpuUsage();
  const server0 = await server.cpuMs();
  const start = Date.now();
  return async () => {
    const serverMs = (await server.cpuMs()) - server0;
    const poller = process.cpuUsage(poller0);
    const ms = Date.now() - start;
    return {
      ms,
      server: serverMs,
      envoys: fleetCpuMs(envoys) - envoys0,
      poller: (poller.user + poller.system) / 1000,
    };
  };
}

/** Envoys that exited, by name and exit status. */
export function exited(envoys: readonly EnvoyProcess[]): string[] {
  return envoys
    .filter((e) => e.child.exitCode !== null || e.child.signalCode !== null)
    .map((e) => `${e.name} (exit ${e.child.exitCode ?? e.child.signalCode})`);
}

/**
 * Every Envoy whose CDS, LDS, RDS or SDS rejected an update, or that still warms something, with
 * its non-zero counters and the log lines that carry the rejection.
 */
export async function rejectedUpdates(envoys: readonly EnvoyProcess[]): Promise<string[]> {
  const found: string[] = [];
  for (const e of envoys) {
    const bad = Object.entries(await rejectionStats(e)).filter(([, v]) => v !== 0);
    if (bad.length)
      found.push(`${e.name}: ${JSON.stringify(Object.fromEntries(bad))}\n${rejections(e.log())}`);
  }
  return found;
}

/**
 * When Envoy accepted the last update of `typeName` (e.g. `ClusterLoadAssignment`) in [from, to],
 * from its `config` debug log (`[<epoch s>.<ms>][debug][config] Delta config for <type URL>
 * accepted ...`); NaN if it logged none in that window.
 */
export function acceptedAt(log: string, typeName: string, from: number, to: number): number {
  const line = new RegExp(
    `^\\[(\\d+)\\.(\\d{3})\\]\\[debug\\]\\[config\\] Delta config for type\\.googleapis\\.com/[\\w.]+\\.${typeName} accepted`,
    'gm',
  );
  let last = NaN;
  // Only the tail can hold this round's lines; a round's log is a few lines per Envoy.
  const tail = log.slice(-64 * 1024);
  for (let m = line.exec(tail); m; m = line.exec(tail)) {
    const at = Number(m[1]) * 1000 + Number(m[2]);
    if (at >= from && at <= to) last = at;
  }
  return last;
}
