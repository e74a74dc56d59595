/**
 * The two measurements of one proxy: (a) cold, a first build on a server that has nothing yet
 * (a fresh cache and encoder per iteration, so every resource is built, encoded and pooled), and
 * (b) warm, a rebuild after one endpoint moved, on a server that holds the proxy's last view.
 */
import { allTypeUrls, shortName, TypeUrl } from '../../src/xds/types.js';
import type { ProxyView } from '../../src/xds/cache/proxy-view.js';
import { type ProxyPipeline, Server, type Timing } from './pipeline.js';
import { noProfiler, type Profiler } from './profile.js';

export interface LoopOptions {
  readonly iterations: number;
  /** Iterations of a cold build (a 10,000-service gateway's takes seconds on a loaded machine). */
  readonly coldIterations: number;
  readonly warmup: number;
}

/** Where a loop's profile goes: `label` names the file (see profile.ts). */
export interface Profiling {
  readonly profiler: Profiler;
  readonly label: string;
}

const unprofiled: Profiling = { profiler: noProfiler, label: '' };

export interface ViewSummary {
  /** "2 SDS, 101 CDS, ..." in push order. */
  readonly byType: string;
  readonly resources: number;
  readonly bytes: number;
}

export interface ColdResult {
  readonly timings: readonly Timing[];
  readonly encodes: readonly number[];
  readonly view: ViewSummary;
}

export interface WarmResult {
  readonly timings: readonly Timing[];
  readonly encodes: readonly number[];
  /**
   * Iterations whose changed resources were not exactly the moved service's EDS, as "expected →
   * got".
   */
  readonly wrongChanges: readonly string[];
}

/**
 * A catalog or import change: returns the change keys the SnapshotManager would hand the builder
 * (src/snapshot/pieces.ts `Changes`) and the one EDS resource it must change.
 */
export type Move = (k: number) => { readonly changes: readonly string[]; readonly cluster: string };

function summarize(view: ProxyView): ViewSummary {
  const parts: string[] = [];
  let resources = 0;
  let bytes = 0;
  for (const t of allTypeUrls) {
    const byName = view.resources.get(t);
    if (!byName?.size) continue;
    parts.push(`${byName.size} ${shortName[t]}`);
    resources += byName.size;
    for (const e of byName.values()) bytes += e.size;
  }
  return { byType: parts.join(', '), resources, bytes };
}

export async function runCold(
  pipeline: ProxyPipeline,
  opts: LoopOptions,
  prof = unprofiled,
): Promise<ColdResult> {
  const timings: Timing[] = [];
  const encodes: number[] = [];
  let view: ProxyView | undefined;
  const warmup = Math.min(opts.warmup, opts.coldIterations);
  for (let i = 0; i < warmup + opts.coldIterations; i++) {
    if (i === warmup) await prof.profiler.begin();
    const server = new Server();
    const r = pipeline.rebuild(server, 'all');
    if (i < warmup) continue;
    timings.push(r.timing);
    encodes.push(await server.encodes());
    view = r.view;
  }
  await prof.profiler.end(prof.label);
  return { timings, encodes, view: summarize(view!) };
}

/**
 * The resources whose version differs between two views, as "EDS name". A type whose entries
 * were published as a change of the previous ones (TypeEntries.changedSince) is compared by its
 * changed entries alone, so the check costs what changed, not what the view holds (it runs
 * between timed rebuilds, and at 10,000 services a whole compare made garbage that the timed
 * spans then collected).
 */
function changedNames(before: ProxyView, after: ProxyView): string[] {
  const out: string[] = [];
  allTypeUrls.forEach((t, i) => {
    const was = before.byIndex[i];
    const now = after.byIndex[i];
    if (was === now) return;
    const changed = now?.changedSince(was);
    if (changed) {
      for (const e of changed) out.push(`${shortName[t]} ${e.name}`);
      return;
    }
    const names = new Set([...(was?.keys() ?? []), ...(now?.keys() ?? [])]);
    for (const n of names)
      if (was?.get(n)?.version !== now?.get(n)?.version) out.push(`${shortName[t]} ${n}`);
  });
  return out.sort();
}

/**
 * Publishes the proxy on `server` once, then moves an endpoint and rebuilds, iteration after
 * iteration.
 */
export async function runWarm(
  pipeline: ProxyPipeline,
  server: Server,
  move: Move,
  opts: LoopOptions,
  prof = unprofiled,
): Promise<WarmResult> {
  let last = pipeline.rebuild(server, 'all').view;
  const timings: Timing[] = [];
  const encodes: number[] = [];
  const wrongChanges: string[] = [];
  for (let k = 0; k < opts.warmup + opts.iterations; k++) {
    if (k === opts.warmup) await prof.profiler.begin();
    const moved = move(k);
    const expected = `${shortName[TypeUrl.endpoint]} ${moved.cluster}`;
    const n0 = await server.encodes();
    const r = pipeline.rebuild(server, new Set(moved.changes));
    const n = (await server.encodes()) - n0;
    const changed = changedNames(last, r.view);
    last = r.view;
    if (k < opts.warmup) continue;
    timings.push(r.timing);
    encodes.push(n);
    if (changed.length !== 1 || changed[0] !== expected)
      wrongChanges.push(`${expected} → [${changed.join(', ')}]`);
  }
  await prof.profiler.end(prof.label);
  return { timings, encodes, wrongChanges };
}

/** The timings of rebuilds after one service was added. */
export interface AddResult {
  readonly timings: readonly Timing[];
  readonly encodes: readonly number[];
}

/**
 * Publishes the proxy on a fresh server, then adds one service per iteration (`add(k)` returns the
 * change keys) and rebuilds: what a gateway pays for each service a peer starts to export.
 */
export async function runAdditions(
  pipeline: ProxyPipeline,
  add: (k: number) => readonly string[],
  opts: LoopOptions,
  prof = unprofiled,
): Promise<AddResult> {
  const server = new Server();
  pipeline.rebuild(server, 'all');
  const timings: Timing[] = [];
  const encodes: number[] = [];
  for (let k = 0; k < opts.warmup + opts.iterations; k++) {
    if (k === opts.warmup) await prof.profiler.begin();
    const changes = add(k);
    const n0 = await server.encodes();
    const r = pipeline.rebuild(server, new Set(changes));
    const n = (await server.encodes()) - n0;
    if (k < opts.warmup) continue;
    timings.push(r.timing);
    encodes.push(n);
  }
  await prof.profiler.end(prof.label);
  return { timings, encodes };
}
