/**
 * Prints the benchmark's figures as plain-text tables, with each target and PASS/FAIL beside it.
 */
import { availableParallelism } from 'node:os';
import type { CdsMicroResult } from './cds-micro.js';
import type { PushMicroResult } from './push-micro.js';
import type { RawRound } from './raw-phase.js';
import { max, median, percentile } from './stats.js';
import type { RunOptions, XdsRound, XdsSetup } from './xds-phase.js';

export interface Report {
  readonly opts: RunOptions;
  readonly gc: boolean;
  readonly setup: XdsSetup;
  readonly push: readonly XdsRound[];
  readonly raw: readonly RawRound[];
  /** Raw rounds in which every client answers with `ackBytes`, as a proxy ACKs. */
  readonly rawAck: readonly RawRound[];
  readonly ackBytes: number;
  readonly cds: CdsMicroResult;
  /** The server's own work per push, in-process (push-micro.ts). */
  readonly own: PushMicroResult;
}

/** Targets (bench/README.md). */
const targets = {
  convergenceMs: 1_000,
  /** Issue 14's at 10,000 proxies: endpoint change → all ACKed, p99 over the changes. */
  fleetP99Ms: 500,
  kbPerProxy: 100,
  rawRatio: 2,
  cdsUs: 2_000,
};

function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
const roundLabel = (x: { round: number; warmup: boolean }) =>
  x.warmup ? `${x.round} (warm-up)` : String(x.round);

function pushTable(r: Report): string {
  const n = r.opts.clients;
  return table(
    [
      'round',
      'publish ms',
      '1st write ms',
      'last write ms',
      'p50 ACK ms',
      'last ACK ms',
      'server done ms',
      'server CPU ms',
      'CPU ms/push',
      'client CPU ms',
    ],
    r.push.map((x) => [
      roundLabel(x),
      f(x.publishMs, 2),
      f(x.firstWriteMs),
      f(x.lastWriteMs),
      f(x.p50AckMs),
      f(x.lastAckMs),
      f(x.serverAckedMs),
      f(x.cpuMs),
      f(x.cpuMs / n, 3),
      f(x.clientCpuMs, 0),
    ]),
  );
}

function rawTable(r: Report): string {
  const n = r.opts.clients;
  return table(
    [
      'round',
      'write loop ms',
      'p50 recv ms',
      'last recv ms',
      'server CPU ms',
      'CPU ms/write',
      'client CPU ms',
    ],
    r.raw.map((x) => [
      roundLabel(x),
      f(x.writeMs, 2),
      f(x.p50Ms),
      f(x.lastMs),
      f(x.cpuMs),
      f(x.cpuMs / n, 3),
      f(x.clientCpuMs, 0),
    ]),
  );
}

function rawAckTable(r: Report): string {
  const n = r.opts.clients;
  return table(
    [
      'round',
      'write loop ms',
      'p50 answer ms',
      'last answer ms',
      'server read all ms',
      'server CPU ms',
      'CPU ms/write',
      'client CPU ms',
    ],
    r.rawAck.map((x) => [
      roundLabel(x),
      f(x.writeMs, 2),
      f(x.p50Ms),
      f(x.lastMs),
      f(x.serverDoneMs ?? NaN),
      f(x.cpuMs),
      f(x.cpuMs / n, 3),
      f(x.clientCpuMs, 0),
    ]),
  );
}

function summaryTable(r: Report): string {
  const n = r.opts.clients;
  const rounds = r.push.filter((x) => !x.warmup);
  const last = rounds.map((x) => x.lastAckMs);
  // Every push must converge within the target, the first one after start included.
  const everyLast = r.push.map((x) => x.lastAckMs);
  const worst = max(everyLast);
  const p99 = percentile(everyLast, 99);
  const publish = rounds.map((x) => x.publishMs);
  const cpuPerPush = rounds.map((x) => x.cpuMs / n);
  const rawLast = r.raw.filter((x) => !x.warmup).map((x) => x.lastMs);
  const kb = (bytes: number) => bytes / 1024 / n;
  const { memBefore, memViews, memSynced } = r.setup;
  const rssKb = kb(memSynced.rss - memBefore.rss);
  const ratio = median(last) / median(rawLast);
  const rawAckLast = r.rawAck.filter((x) => !x.warmup).map((x) => x.lastMs);
  const ackRatio = median(last) / median(rawAckLast);
  return table(
    ['figure', 'value', 'target', 'result'],
    [
      [
        'convergence: last ACK after publish, p50 / max (warm-up incl.)',
        `${f(median(last))} / ${f(worst)} ms`,
        `max ≤ ${targets.convergenceMs} ms`,
        verdict(worst <= targets.convergenceMs),
      ],
      [
        `convergence: last ACK after publish, p99 of all ${r.push.length} rounds (warm-up incl.; the max below 100 rounds)`,
        `${f(p99)} ms`,
        `≤ ${targets.fleetP99Ms} ms at 10,000`,
        verdict(p99 <= targets.fleetP99Ms),
      ],
      [
        'publish call (updateProxyResources × N), p50 / max',
        `${f(median(publish), 2)} / ${f(max(publish), 2)} ms`,
        '',
        '',
      ],
      [
        'server CPU per push, p50 / max',
        `${f(median(cpuPerPush), 3)} / ${f(max(cpuPerPush), 3)} ms`,
        '',
        '',
      ],
      [
        'RSS per connected proxy (views + streams)',
        `${f(rssKb)} KB`,
        `≤ ${targets.kbPerProxy} KB`,
        verdict(rssKb <= targets.kbPerProxy),
      ],
      [
        '  of which RSS for published views alone',
        `${f(kb(memViews.rss - memBefore.rss))} KB`,
        '',
        '',
      ],
      [
        '  JS heap / external+buffers per proxy',
        `${f(kb(memSynced.heapUsed - memBefore.heapUsed))} / ${f(kb(memSynced.external - memBefore.external))} KB`,
        '',
        '',
      ],
      [
        'raw fan-out: last receipt, p50 / max',
        `${f(median(rawLast))} / ${f(max(rawLast))} ms`,
        '',
        '',
      ],
      [
        'push path / raw fan-out (p50 / p50)',
        `${f(ratio, 2)}×`,
        `≤ ${targets.rawRatio}×`,
        verdict(ratio <= targets.rawRatio),
      ],
      [
        'raw fan-out with the ACK leg: last answer, p50 / max',
        `${f(median(rawAckLast))} / ${f(max(rawAckLast))} ms`,
        '',
        '',
      ],
      ['push path / raw fan-out with the ACK leg (p50 / p50)', `${f(ackRatio, 2)}×`, '', ''],
      [
        `isthmus's own work per push, in-process, ${r.own.proxies} proxies: publish and write + later flush + ACK`,
        `${f(r.own.publishUs + r.own.flushUs + r.own.ackUs, 1)} µs (${f(r.own.publishUs)} + ${f(r.own.flushUs)} + ${f(r.own.ackUs)})`,
        '',
        '',
      ],
      [
        `${r.cds.clusters}-cluster SotW CDS assembly, median (p90)`,
        `${f(r.cds.assemblyP50Us, 0)} µs (${f(r.cds.assemblyP90Us, 0)})`,
        `≤ ${targets.cdsUs} µs`,
        verdict(r.cds.assemblyP50Us <= targets.cdsUs),
      ],
      [
        '  via a SotwSession: publish → response written, median',
        `${f(r.cds.sessionP50Us, 0)} µs`,
        '',
        '',
      ],
      [
        '  the publish itself (one cluster changed), median',
        `${f(r.cds.publishP50Us, 0)} µs`,
        '',
        '',
      ],
    ],
  );
}

/** The server's V8 heap flags (the young generation's size moves the figures: bench/README.md). */
function serverNodeFlags(): string {
  const flags = [...(process.env.NODE_OPTIONS ?? '').split(/\s+/), ...process.execArgv].filter(
    (f) => f.startsWith('--max-semi-space-size') || f.startsWith('--max-old-space-size'),
  );
  return flags.length > 0 ? `(server: ${flags.join(' ')})` : '(server: default heap)';
}

export function printReport(r: Report): void {
  const o = r.opts;
  const lines = [
    'isthmus xDS fan-out benchmark',
    `  clients ${o.clients} · workers ${o.workers} · api ${o.api} · rounds ${o.rounds} (+1 warm-up) · connections: one per ${o.conn} · client ${o.client} · ` +
      `node ${process.version} ${serverNodeFlags()} · ${availableParallelism()} CPUs · forced GC ${r.gc ? 'yes' : 'no'}`,
    `  view per proxy: 1 secret, 10 clusters, 10 ClusterLoadAssignments, 1 listener · one EDS push = ${r.setup.edsResponse.length} bytes · ` +
      `${r.cds.clusters}-cluster CDS response = ${r.cds.responseBytes} bytes`,
    `  initial sync: all ${o.clients} proxies received and ACKed their views ${f(r.setup.syncMs)} ms after connecting began`,
    '',
    'push path: one ClusterLoadAssignment changed, published to every proxy (times from the start of publishing)',
    pushTable(r),
    '',
    'raw grpc-js fan-out: the same bytes written to as many streams, no ACK, each round right after the push round (times from the write loop start)',
    rawTable(r),
    '',
    `raw grpc-js fan-out with the ACK leg: the same, and every client answers each message with ${r.ackBytes} bytes (a proxy's ACK) before taking its time`,
    rawAckTable(r),
    '',
    summaryTable(r),
  ];
  console.log(lines.join('\n'));
}
