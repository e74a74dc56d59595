/** Deadline-bounded waits for tests: every wait says what it waited for when it gives up. */

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
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitOptions): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== null && value !== false) return value as Exclude<T, undefined | null | false>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) throw timeoutError(opts, lastError);
    await new Promise((resolve) => setTimeout(resolve, Math.min(opts.intervalMs ?? 50, Math.max(1, deadline - Date.now()))));
  }
}

/** Resolves or rejects like `promise`, or rejects with a descriptive error after `timeoutMs`. */
export async function withDeadline<T>(promise: Promise<T>, opts: Omit<WaitOptions, 'intervalMs'>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(timeoutError(opts, undefined)), opts.timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function timeoutError(opts: Pick<WaitOptions, 'timeoutMs' | 'what'>, lastError: unknown): Error {
  const cause = lastError === undefined ? '' : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
  return new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${cause}`);
}
