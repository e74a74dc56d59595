/**
 * Asks every Envoy of the fleet until a check passes for each. Polling hundreds of admin endpoints
 * fast enough to time a change to the millisecond would take the CPU the server needs to push it,
 * so the poller is told when to look: an Envoy that just logged an accepted update (a hint) is
 * asked at once, and again every few ms for a short while. Every Envoy is also asked now and then
 * without a hint (`sweepGapMs`), so a missed hint delays a figure but never loses it.
 */

export interface PollOptions {
  /** Admin requests in flight at once. */
  readonly concurrency: number;
  /** Wall-clock ms after which the Envoys still waiting count as not converged. */
  readonly deadline: number;
  /** Without a hint, the same Envoy is asked again no sooner than this (ms). */
  readonly sweepGapMs: number;
  /** Subscribes to hints that Envoy i has just applied something; returns the unsubscribe. */
  readonly hints?: (hint: (i: number) => void) => () => void;
}

export interface PollOutcome {
  /**
   * Per Envoy: when the response that first passed the check arrived (wall-clock ms), NaN if never.
   */
  readonly seenAt: readonly number[];
  /** Indices of the Envoys that had not passed at the deadline. */
  readonly missing: readonly number[];
  readonly requests: number;
  /** The last error a check threw (it counted as "not yet"). */
  readonly lastError?: unknown;
}

/**
 * The gap between unhinted polls of one Envoy: about 250 admin requests a second over the fleet.
 */
export const sweepGapMs = (envoys: number) => Math.max(250, 4 * envoys);

/**
 * After a hint, the Envoy is asked as soon as a request is free, and then every `hotGapMs` for
 * `hotForMs`, until the check passes.
 */
const hotForMs = 300;
const hotGapMs = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function pollFleet(
  count: number,
  check: (i: number) => Promise<boolean>,
  opts: PollOptions,
): Promise<PollOutcome> {
  const seenAt = new Array<number>(count).fill(NaN);
  const lastAsked = new Array<number>(count).fill(-Infinity);
  const hintedAt = new Array<number>(count).fill(-Infinity);
  const hotUntil = new Array<number>(count).fill(0);
  const busy = new Array<boolean>(count).fill(false);
  let hot: number[] = [];
  // The Envoys still waiting, in the order they were last asked (the longest unasked first).
  const sweep = Array.from({ length: count }, (_, i) => i);
  let waiting = count;
  let requests = 0;
  let lastError: unknown;

  const ready = (i: number, gap: number, now: number) =>
    Number.isNaN(seenAt[i]) && !busy[i] && now - lastAsked[i]! >= gap;
  const take = (i: number): number => {
    const at = sweep.indexOf(i);
    if (at >= 0) sweep.push(...sweep.splice(at, 1));
    return i;
  };
  const next = (): number | undefined => {
    const now = Date.now();
    if (hot.length) {
      // A hinted Envoy stays first in line until it has been asked once since the hint, however
      // long the line.
      hot = hot.filter(
        (i) => Number.isNaN(seenAt[i]) && (lastAsked[i]! < hintedAt[i]! || hotUntil[i]! > now),
      );
      const fromHint = hot.find((i) => ready(i, hotGapMs, now));
      if (fromHint !== undefined) return take(fromHint);
    }
    for (let k = 0; k < sweep.length; k++) {
      const i = sweep[k]!;
      if (!Number.isNaN(seenAt[i])) sweep.splice(k--, 1);
      else if (ready(i, opts.sweepGapMs, now)) return take(i);
      else if (!busy[i]) return undefined; // asked too recently, and so was everyone after it
    }
    return undefined;
  };

  const unsubscribe = opts.hints?.((i) => {
    hintedAt[i] = Date.now();
    hotUntil[i] = hintedAt[i]! + hotForMs;
    if (!hot.includes(i)) hot.push(i);
  });
  const worker = async (): Promise<void> => {
    while (waiting > 0 && Date.now() < opts.deadline) {
      const i = next();
      if (i === undefined) {
        await sleep(1);
        continue;
      }
      busy[i] = true;
      lastAsked[i] = Date.now();
      requests++;
      const passed = await check(i).catch((err: unknown) => {
        lastError = err;
        return false;
      });
      busy[i] = false;
      if (passed) {
        seenAt[i] = Date.now();
        waiting--;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, count) }, worker));
  } finally {
    unsubscribe?.();
  }
  const missing = seenAt.flatMap((t, i) => (Number.isNaN(t) ? [i] : []));
  return { seenAt, missing, requests, ...(lastError === undefined ? {} : { lastError }) };
}
