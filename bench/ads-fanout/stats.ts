/** Small measuring helpers: percentiles, memory samples after GC, deadline-bounded polling. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[
    Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  ]!;
}

export const median = (values: readonly number[]) => percentile(values, 50);
export const max = (values: readonly number[]) =>
  values.reduce((a, b) => Math.max(a, b), -Infinity);

/**
 * `global.gc` when node runs with --expose-gc; otherwise the flag is turned on at run time and
 * the function fetched from a fresh context (the npm script runs node without flags).
 */
export function findGc(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

const gc = findGc();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface MemorySample {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
}

/** Median of a few samples of RSS / heap / external, each after a full GC. */
export async function sampleMemory(samples = 5): Promise<MemorySample> {
  const taken: MemorySample[] = [];
  for (let i = 0; i < samples; i++) {
    gc?.();
    await sleep(40);
    const m = process.memoryUsage();
    taken.push({ rss: m.rss, heapUsed: m.heapUsed, external: m.external + m.arrayBuffers });
  }
  return {
    rss: median(taken.map((m) => m.rss)),
    heapUsed: median(taken.map((m) => m.heapUsed)),
    external: median(taken.map((m) => m.external)),
  };
}

export const hasGc = gc !== undefined;

export function collectGarbage(): void {
  gc?.();
}

/** Polls `done` every `everyMs` until it is true; rejects with `what` at the deadline. */
export async function until(
  done: () => boolean,
  what: string,
  timeoutMs = 60_000,
  everyMs = 1,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

export const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
