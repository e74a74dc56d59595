/** Reconnect delays of the dialer (issue 4: jittered exponential backoff capped at 64 s). */
export interface BackoffOptions {
  /** Delay ceiling of the first retry (ms). */
  readonly baseMs?: number;
  /** No delay is ever longer (ms). */
  readonly maxMs?: number;
  readonly factor?: number;
  /** Fraction of the delay taken off at random: 0.5 gives a delay in [d/2, d]. */
  readonly jitter?: number;
  /** Uniform in [0, 1); injectable for tests. */
  readonly random?: () => number;
}

export const defaultBackoff = { baseMs: 1_000, maxMs: 64_000, factor: 2, jitter: 0.5 } as const;

/**
 * The delay before retry number `attempt` (0 for the first retry after a failure): the ceiling
 * `min(maxMs, baseMs · factor^attempt)` minus a random share of up to `jitter` of it, so dialers
 * that lost the same acceptor do not come back in lockstep, and never more than `maxMs`.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const baseMs = opts.baseMs ?? defaultBackoff.baseMs;
  const maxMs = opts.maxMs ?? defaultBackoff.maxMs;
  const factor = opts.factor ?? defaultBackoff.factor;
  const jitter = opts.jitter ?? defaultBackoff.jitter;
  const random = opts.random ?? Math.random;
  const ceiling = Math.min(maxMs, baseMs * factor ** Math.max(0, attempt));
  return Math.round(ceiling * (1 - jitter * random()));
}
