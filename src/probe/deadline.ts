/** Deadline-bounded waits: every wait says what it waited for when it gives up. */

export interface DeadlineOptions {
  readonly timeoutMs: number;
  /** Completes "timed out after N ms waiting for <what>". */
  readonly what: string;
}

/** Resolves or rejects like `promise`, or rejects with a descriptive error after `timeoutMs`. */
export async function withDeadline<T>(promise: Promise<T>, opts: DeadlineOptions): Promise<T> {
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

export function timeoutError(opts: DeadlineOptions, lastError: unknown): Error {
  const cause =
    lastError === undefined
      ? ''
      : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
  return new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${cause}`);
}
