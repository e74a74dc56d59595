/** Deadline-bounded waits for tests: every wait says what it waited for when it gives up. */
import { timeoutError } from '../../src/probe/deadline.js';

export interface WaitOptions {
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  /** Completes "timed out after N ms waiting for <what>". */
  readonly what: string;
}

/**
 * Polls `fn` until it returns a value other than `undefined`, `null` or `false`, and resolves with
 * it. A throwing `fn` counts as "not yet"; its last error is part of the timeout message.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: WaitOptions,
): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== null && value !== false)
        return value as Exclude<T, undefined | null | false>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) throw timeoutError(opts, lastError);
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(opts.intervalMs ?? 50, Math.max(1, deadline - Date.now()))),
    );
  }
}

export { withDeadline } from '../../src/probe/deadline.js';
