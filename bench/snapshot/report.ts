/**
 * Prints the benchmark's figures as plain-text tables, with each target and PASS/FAIL beside it.
 */
import { availableParallelism } from 'node:os';
import type { MemorySample } from '../ads-fanout/stats.js';
import { median, percentile } from '../ads-fanout/stats.js';
import type { Timing } from './pipeline.js';
import type { AddResult, ColdResult, LoopOptions, WarmResult } from './scenario.js';

/**
 * Targets (issue 3, bench/README.md); issue 14: one change on the incremental path ≤ 2 ms, and a
 * cold build ≤ 10× one change per service (upstream, for a sidecar).
 */
export const targets = { rebuildMs: 50, encodesPerChange: 1, changeMs: 2, coldPerUnit: 10 };

export interface CaseReport {
  readonly title: string;
  /** Services (gateway) or upstreams (sidecar): what a cold build is compared per. */
  readonly units: number;
  /** Services in the catalog. */
  readonly services: number;
  /** What the topology is, one line. */
  readonly topology: string;
  readonly cold: ColdResult;
  readonly warm: WarmResult;
  /** (c) Rebuilds after one service was added (the importing gateway). */
  readonly added?: AddResult;
  /** Heap used after GC at named points (gateway case). */
  readonly heap?: readonly (readonly [string, MemorySample])[];
}

export interface Report {
  readonly opts: LoopOptions & { readonly catalog: string };
  readonly gc: boolean;
  readonly cases: readonly CaseReport[];
  /** Print the curve: one change and cold build by catalog size. */
  readonly curve: boolean;
}

function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

const f = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
const mb = (bytes: number) => `${f(bytes / 1024 / 1024, 1)} MB`;
const p50 = (ts: readonly Timing[], k: keyof Timing) => median(ts.map((t) => t[k]));
const p95 = (ts: readonly Timing[], k: keyof Timing) =>
  percentile(
    ts.map((t) => t[k]),
    95,
  );
const p99 = (ts: readonly Timing[], k: keyof Timing) =>
  percentile(
    ts.map((t) => t[k]),
    99,
  );

function range(values: readonly number[]): string {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return lo === hi ? String(lo) : `${lo}–${hi}`;
}

function caseTable(c: CaseReport): string {
  const row = (label: string, ts: readonly Timing[], encodes: readonly number[]) => [
    label,
    f(p50(ts, 'buildMs')),
    f(p50(ts, 'generateMs')),
    f(p50(ts, 'encodeMs')),
    f(p50(ts, 'publishMs')),
    f(p50(ts, 'totalMs')),
    f(p95(ts, 'totalMs')),
    f(p99(ts, 'totalMs')),
    f(p50(ts, 'cpuMs')),
    f(p99(ts, 'cpuMs')),
    range(encodes),
  ];
  return table(
    [
      '',
      'build',
      'generate',
      'encode',
      'publish',
      'total p50',
      'total p95',
      'total p99',
      'CPU p50',
      'CPU p99',
      'encodes',
    ],
    [
      row('(a) cold: fresh encoder and cache', c.cold.timings, c.cold.encodes),
      row('(b) rebuild after one endpoint moved', c.warm.timings, c.warm.encodes),
      ...(c.added
        ? [row('(c) rebuild after one service added', c.added.timings, c.added.encodes)]
        : []),
    ],
  );
}

function heapLine(c: CaseReport): string[] {
  if (!c.heap) return [];
  return [
    `  heap used after GC: ${c.heap.map(([label, m]) => `${label} ${mb(m.heapUsed)}`).join(' · ')}`,
  ];
}

function summaryRows(c: CaseReport): string[][] {
  const cold = p50(c.cold.timings, 'totalMs');
  const warm = p50(c.warm.timings, 'totalMs');
  const badEncodes = c.warm.encodes.filter((n) => n !== targets.encodesPerChange).length;
  const n = c.warm.encodes.length;
  return [
    [
      `${c.title} (a) cold build → publish, p50 (p95)`,
      `${f(cold)} ms (${f(p95(c.cold.timings, 'totalMs'))})`,
      `≤ ${targets.rebuildMs} ms`,
      verdict(cold <= targets.rebuildMs),
    ],
    [
      `${c.title} (b) rebuild → publish, p50 (p95)`,
      `${f(warm)} ms (${f(p95(c.warm.timings, 'totalMs'))})`,
      `≤ ${targets.rebuildMs} ms`,
      verdict(warm <= targets.rebuildMs),
    ],
    ...(c.title.endsWith('incremental')
      ? [
          [
            `${c.title} (b) one change, p50 (issue 14)`,
            `${f(warm)} ms`,
            `≤ ${targets.changeMs} ms`,
            verdict(warm <= targets.changeMs),
          ],
          [
            `${c.title} (a) cold ÷ ${c.units} ÷ (b) (issue 14)`,
            `${f(cold / c.units / warm)}×`,
            `≤ ${targets.coldPerUnit}×`,
            verdict(cold / c.units / warm <= targets.coldPerUnit),
          ],
        ]
      : []),
    ...(c.added
      ? [
          [
            `${c.title} (c) one service added, p50 (p95)`,
            `${f(p50(c.added.timings, 'totalMs'))} ms (${f(p95(c.added.timings, 'totalMs'))})`,
            '',
            '',
          ],
        ]
      : []),
    [
      `${c.title} (b) encodes per change`,
      `${range(c.warm.encodes)} (${n - badEncodes} of ${n} changes = 1)`,
      `= ${targets.encodesPerChange}`,
      verdict(badEncodes === 0),
    ],
    [
      `${c.title} (b) changed resources = the moved service's EDS`,
      `${n - c.warm.wrongChanges.length} of ${n}`,
      `all`,
      verdict(c.warm.wrongChanges.length === 0),
    ],
  ];
}

/**
 * One change and one cold build by catalog size (issue 14): wall and CPU, and the cold build per
 * unit (service or upstream) in changes: cold ÷ (change × units), target ≤ 10.
 */
function curveTable(cases: readonly CaseReport[]): string {
  const rows = cases.map((c) => {
    const [warm, cold] = [c.warm.timings, c.cold.timings];
    const ratio = (k: keyof Timing) => p50(cold, k) / (p50(warm, k) * c.units);
    return [
      `${c.title}`,
      String(c.services),
      String(c.units),
      `${f(p50(warm, 'totalMs'))} / ${f(p99(warm, 'totalMs'))}`,
      `${f(p50(warm, 'cpuMs'))} / ${f(p99(warm, 'cpuMs'))}`,
      verdict(p50(warm, 'totalMs') <= targets.changeMs),
      `${f(p50(cold, 'totalMs'), 0)} / ${f(p50(cold, 'cpuMs'), 0)}`,
      `${f(ratio('totalMs'))}× / ${f(ratio('cpuMs'))}×`,
      verdict(ratio('totalMs') <= targets.coldPerUnit),
    ];
  });
  return table(
    [
      'curve (issue 14)',
      'services',
      'units',
      'change p50/p99 ms',
      'CPU p50/p99 ms',
      '≤ 2 ms',
      'cold ms (wall/CPU)',
      'cold÷(change×units) wall/CPU',
      '≤ 10×',
    ],
    rows,
  );
}

export function printReport(r: Report): void {
  const o = r.opts;
  const lines = [
    'isthmus snapshot benchmark',
    `  iterations ${o.iterations} (+${o.warmup} warm-up) per figure, ${o.coldIterations} per cold build · catalog reader: ${o.catalog} · node ${process.version} · ` +
      `${availableParallelism()} CPUs · forced GC ${r.gc ? 'yes' : 'no'}`,
    "  each figure is SnapshotManager.rebuild. incremental (the server): the proxy's builder after the change → SnapshotPublisher",
    '  (generate, encode and publish in one, under publish). full (the reference): a whole snapshot → resourcesFromSnapshot (generate)',
    "  → ResourceEncoder.encodeFor (encode) → XdsCache.setProxyResources (publish). Times in ms: per-step medians, the total's median",
    '  and p95 (wall clock), and the median process CPU time of a rebuild (less sensitive to a loaded machine).',
    '  encodes = isthmus_xds_resource_encodes_total delta',
  ];
  for (const c of r.cases) {
    lines.push(
      '',
      `${c.title}: ${c.topology}`,
      `  view: ${c.cold.view.byType} = ${c.cold.view.resources} resources, ${f(c.cold.view.bytes / 1024, 1)} KB encoded`,
      ...heapLine(c),
      caseTable(c),
    );
    for (const w of c.warm.wrongChanges.slice(0, 5)) lines.push(`  unexpected change: ${w}`);
  }
  lines.push('', table(['figure', 'value', 'target', 'result'], r.cases.flatMap(summaryRows)));
  if (r.curve) lines.push('', curveTable(r.cases));
  console.log(lines.join('\n'));
}
