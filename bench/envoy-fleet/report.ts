/** Prints the fleet benchmark's figures as plain-text tables, and lists what failed. */
import { availableParallelism } from 'node:os';
import { max, median, percentile } from '../ads-fanout/stats.js';
import type { PhaseResult } from './ca-rounds.js';
import type { ChangeRound } from './endpoint-rounds.js';
import type { FakeResult } from './fake-fleet.js';
import { type CpuSpent, envoyArgs, type EnvoyFootprint, type FleetStart } from './fleet.js';
import type { ServerMemory } from './server-process.js';

export interface Options {
  readonly envoys: number;
  readonly apiInstances: number;
  readonly rounds: number;
  readonly rotations: number;
  readonly phaseMs: number;
  readonly boundMs: number;
  readonly startParallel: number;
  readonly pollConcurrency: number;
  readonly coalesceMs: number;
  readonly idleMs: number;
  readonly fake: boolean;
}

export interface Report {
  readonly opts: Options;
  readonly envoyVersion: string;
  readonly machine: {
    readonly loadBefore: number[];
    readonly loadAfter: number[];
    readonly freeBefore: number;
    readonly freeAfter: number;
  };
  readonly fake: FakeResult | undefined;
  readonly start: FleetStart;
  readonly server: {
    /**
     * After a forced GC: fresh, registrations only, with every Envoy connected, after the rounds.
     */
    readonly memFresh: ServerMemory;
    readonly memZero: ServerMemory;
    readonly memFleet: ServerMemory;
    readonly memAfter: ServerMemory;
    readonly peakRss: number;
    /** Server CPU per second at idle (ms/s) with no Envoy and with every Envoy connected. */
    readonly idleZero: number;
    readonly idleFleet: number;
  };
  readonly envoyMemory: EnvoyFootprint;
  /** CPU of all Envoys together per second at idle (ms/s). */
  readonly envoyIdleCpuMsPerS: number;
  readonly changes: readonly ChangeRound[];
  readonly rotations: readonly PhaseResult[];
  readonly rejected: readonly string[];
  /** NACKs the server counted over the whole run (isthmus_xds_rejects_total). */
  readonly serverNacks: number;
  readonly exited: readonly string[];
}

/**
 * bench:ads-fanout's figures as the README gives them (another run: 1,000 fake clients, 16 runs).
 */
const adsFanoutReadme = { kbPerProxy: '48–61 KB', cpuPerPushMs: '0.052–0.076 ms' };

function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const mb = (bytes: number) => `${f(bytes / 1024 / 1024, 1)} MB`;
const kb = (bytes: number) => `${f(bytes / 1024, 1)} KB`;
const finite = (values: readonly number[]) => values.filter((v) => Number.isFinite(v));
/**
 * `p50 / p99 / max` of the values (ms); unconverged ones (NaN) are left out and named elsewhere.
 */
const spread = (values: readonly number[]) => {
  const v = finite(values);
  return `${f(median(v))} / ${f(percentile(v, 99))} / ${f(max(v))}`;
};
const roundLabel = (x: { round: number; warmup: boolean }) =>
  x.warmup ? `${x.round} (warm-up)` : String(x.round);

/** `server / Envoys / poller` CPU (ms); the Envoys' above what the fleet spends idle in as long. */
function cpuCells(r: Report, c: CpuSpent): string {
  return `${f(c.server)} / ${f(c.envoys - (r.envoyIdleCpuMsPerS * c.ms) / 1000)} / ${f(c.poller)}`;
}

function changeTable(r: Report): string {
  const n = r.opts.envoys;
  const cpu = (c: CpuSpent) => cpuCells(r, c);
  return table(
    [
      'round',
      'API call ms',
      'applied p50 / p99 / max ms',
      'in /clusters p50 / p99 / max ms',
      'xDS responses',
      'admin requests',
      'CPU ms: server / Envoys above idle / poller',
      'server CPU ms/Envoy',
      'server RSS',
    ],
    r.changes.map((x) => [
      roundLabel(x),
      f(x.registerMs),
      spread(x.appliedMs),
      spread(x.visibleMs),
      String(x.responses),
      String(x.requests),
      cpu(x.cpu),
      f(x.cpu.server / n, 3),
      mb(x.serverRss),
    ]),
  );
}

function rotationTable(r: Report): string {
  const cpu = (c: CpuSpent) => cpuCells(r, c);
  return table(
    [
      'rotation',
      'phase',
      'server step logged at ms',
      'applied p50 / p99 / max ms',
      'shown p50 / p99 / max ms',
      'xDS responses',
      'admin requests',
      'CPU ms: server / Envoys above idle / poller',
    ],
    r.rotations.map((x) => [
      String(x.rotation),
      x.phase,
      f(x.serverStepMs),
      spread(x.appliedMs),
      spread(x.visibleMs),
      String(x.responses),
      String(x.requests),
      cpu(x.cpu),
    ]),
  );
}

function fakeTable(fake: FakeResult): string {
  return table(
    [
      'round',
      'held p50 / p99 / max ms',
      'xDS responses',
      'CPU ms: server / clients',
      'server CPU ms/client',
    ],
    fake.rounds.map((x) => [
      roundLabel(x),
      spread(x.heldMs),
      String(x.responses),
      `${f(x.cpu.server)} / ${f(x.cpu.clients)}`,
      f(x.cpu.server / fake.clients, 3),
    ]),
  );
}

/**
 * Every per-Envoy figure of the measured rounds, pooled; the maximum includes the warm-up round.
 */
function pooled<T extends { warmup: boolean }>(
  rounds: readonly T[],
  pick: (x: T) => readonly number[],
): string {
  const measured = finite(rounds.filter((x) => !x.warmup).flatMap(pick));
  return `${f(median(measured))} / ${f(percentile(measured, 99))} / ${f(max(finite(rounds.flatMap(pick))))} ms`;
}

function summaryTable(r: Report): string {
  const n = r.opts.envoys;
  const fake = r.fake;
  const perProxy = (
    after: ServerMemory,
    before: ServerMemory,
    k: keyof ServerMemory,
    count: number,
  ) => kb((after[k] - before[k]) / count);
  const cpuPerPush = (
    rounds: readonly { warmup: boolean; cpu: { server: number } }[],
    count: number,
  ) => `${f(median(rounds.filter((x) => !x.warmup).map((x) => x.cpu.server / count)), 3)} ms`;
  const phase = (p: PhaseResult['phase'], pick: (x: PhaseResult) => readonly number[]) =>
    pooled(
      r.rotations.filter((x) => x.phase === p).map((x) => ({ ...x, warmup: false })),
      pick,
    );
  const s = r.server;
  return table(
    [
      'figure',
      `${n} Envoys`,
      fake ? `${fake.clients} fake clients, same run` : 'fake clients',
      'bench:ads-fanout (README, another run)',
    ],
    [
      [
        'endpoint change in every /clusters, p50 / p99 / max',
        pooled(r.changes, (x) => x.visibleMs),
        fake ? pooled(fake.rounds, (x) => x.heldMs) : '',
        '',
      ],
      [
        '  applied (Envoy config log), p50 / p99 / max',
        pooled(r.changes, (x) => x.appliedMs),
        '',
        '',
      ],
      [
        'CA rotation, new root trusted, p50 / p99 / max',
        phase('trust', (x) => x.visibleMs),
        '',
        '',
      ],
      [
        'CA rotation, new leaf presented, p50 / p99 / max',
        phase('leaf', (x) => x.visibleMs),
        '',
        '',
      ],
      [
        '  applied (secret last_updated), p50 / p99 / max',
        phase('leaf', (x) => x.appliedMs),
        '',
        '',
      ],
      [
        'CA rotation, old root retired, p50 / p99 / max',
        phase('retire', (x) => x.visibleMs),
        '',
        '',
      ],
      [
        'server JS heap per registered sidecar (catalog, leaf, view; none connected)',
        perProxy(s.memZero, s.memFresh, 'heapUsed', n),
        '',
        '',
      ],
      [
        'server RSS per connected proxy (after GC)',
        perProxy(s.memFleet, s.memZero, 'rss', n),
        fake ? perProxy(fake.memSynced, fake.memBefore, 'rss', fake.clients) : '',
        adsFanoutReadme.kbPerProxy,
      ],
      [
        '  JS heap / external per proxy',
        `${perProxy(s.memFleet, s.memZero, 'heapUsed', n)} / ${perProxy(s.memFleet, s.memZero, 'external', n)}`,
        fake
          ? `${perProxy(fake.memSynced, fake.memBefore, 'heapUsed', fake.clients)} / ${perProxy(fake.memSynced, fake.memBefore, 'external', fake.clients)}`
          : '',
        '',
      ],
      [
        'server CPU per endpoint change per proxy (median round)',
        cpuPerPush(r.changes, n),
        fake ? cpuPerPush(fake.rounds, fake.clients) : '',
        `${adsFanoutReadme.cpuPerPushMs} (views prebuilt)`,
      ],
      [
        'CPU of each Envoy per endpoint change, above idle (median round)',
        `${f(median(r.changes.filter((x) => !x.warmup).map((x) => (x.cpu.envoys - (r.envoyIdleCpuMsPerS * x.cpu.ms) / 1000) / n)), 2)} ms`,
        '',
        '',
      ],
      [
        'server CPU at idle, proxies connected (none connected)',
        `${f(s.idleFleet, 1)} ms/s (${f(s.idleZero, 1)})`,
        fake ? `${f(fake.idleCpuMsPerS, 1)} ms/s` : '',
        '',
      ],
      [
        'server RSS: no proxy / fleet / after rounds / peak',
        `${mb(s.memZero.rss)} / ${mb(s.memFleet.rss)} / ${mb(s.memAfter.rss)} / ${mb(s.peakRss)}`,
        fake ? `${mb(fake.memBefore.rss)} / ${mb(fake.memSynced.rss)}` : '',
        '',
      ],
    ],
  );
}

export function printReport(r: Report): void {
  const o = r.opts;
  const load = (l: readonly number[]) => l.map((x) => x.toFixed(1)).join(' ');
  const e = r.envoyMemory;
  const lines = [
    'isthmus real-Envoy fleet benchmark',
    `  Envoy ${r.envoyVersion} (${envoyArgs.slice(0, 3).join(' ')}) × ${o.envoys} on one isthmus server · api × ${o.apiInstances} · ` +
      `coalesce ${o.coalesceMs} ms · CA phase ${o.phaseMs} ms · bound ${o.boundMs} ms · node ${process.version} · ${availableParallelism()} CPUs`,
    `  load average before ${load(r.machine.loadBefore)}, after ${load(r.machine.loadAfter)} · free memory before ${mb(r.machine.freeBefore)}, after ${mb(r.machine.freeAfter)}`,
    `  fleet start: ${o.envoys} Envoys LIVE with nothing rejected in ${f(r.start.totalMs / 1000, 1)} s, ${o.startParallel} at a time; ` +
      `spawn → LIVE per Envoy p50 / max ${f(median(r.start.liveMs))} / ${f(max(r.start.liveMs))} ms`,
    `  each Envoy (median): RSS ${mb(median(e.rss))} (the binary's shared pages included), PSS ${mb(median(e.pss))}, private ${mb(median(e.private))}; ` +
      `idle CPU ${f(r.envoyIdleCpuMsPerS / o.envoys, 2)} ms/s (all ${o.envoys}: ${f(r.envoyIdleCpuMsPerS)} ms/s)`,
    '',
    `endpoint change: one api instance re-registered on a new port; times from the start of the API call; ${o.pollConcurrency} admin requests in flight`,
    changeTable(r),
    '',
    'CA rotation: each phase timed from its start (the rotate call; + phase; + 2 × phase)',
    rotationTable(r),
    '',
  ];
  if (r.fake)
    lines.push(
      `fake clients (XdsProbe, Delta, one connection each) on a fresh server with the same registrations; times from the start of the API call`,
      fakeTable(r.fake),
      '',
    );
  lines.push(summaryTable(r));
  console.log(lines.join('\n'));
}

/**
 * What makes the run fail: a change that did not reach every proxy in time, a rejection, a death.
 */
export function failures(r: Report): string[] {
  const names = (m: readonly string[]) => `${m.slice(0, 5).join(', ')}${m.length > 5 ? ', …' : ''}`;
  return [
    ...r.changes
      .filter((x) => x.missing.length)
      .map(
        (x) =>
          `endpoint round ${x.round}: ${x.missing.length} Envoys did not show the new endpoint within ${r.opts.boundMs} ms (${names(x.missing)})`,
      ),
    ...r.rotations
      .filter((x) => x.missing.length)
      .map(
        (x) =>
          `rotation ${x.rotation}, phase ${x.phase}: ${x.missing.length} Envoys did not show it in time (${names(x.missing)})`,
      ),
    ...(r.fake?.rounds ?? [])
      .filter((x) => x.missing)
      .map(
        (x) =>
          `fake round ${x.round}: ${x.missing} clients did not hold the new endpoint within ${r.opts.boundMs} ms`,
      ),
    ...r.rejected.map((x) => `rejected update: ${x}`),
    ...(r.serverNacks
      ? [`the server counted ${r.serverNacks} NACKs (isthmus_xds_rejects_total)`]
      : []),
    ...r.exited.map((x) => `Envoy exited: ${x}`),
  ];
}
