/**
 * Bounds on what one log line and one flood of log lines may hold (issue 21 §3: values from
 * outside were logged whole, and one client wrote 100 MB of log in 5 s). docs/architecture.md §2
 * "Limits of the HTTP API" states the resulting volume bound.
 */

export const logLimits = {
  /** A string field: names, IDs, bodies and peer-sent text are cut here. */
  fieldChars: 256,
  /** The message itself, and an error's message. */
  messageChars: 1_024,
  /** An error's stack. */
  stackChars: 4_096,
  /** Array items and object keys kept per level, and levels kept. */
  items: 32,
  depth: 6,
  /** Lines of one level and message per window; the rest are counted and reported once. */
  linesPerWindow: 20,
  windowMs: 1_000,
} as const;

/** `text` cut to `max` characters with a `…(N more)` suffix. */
export function clipText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(${text.length - max} more)`;
}

/**
 * A copy of a log line's fields with every string clipped, long arrays and objects cut and deep
 * nesting replaced. Only plain objects and arrays are copied: errors are left to the `err`
 * serializer (`clipError`), other instances to their own `toJSON`.
 */
export function clipFields(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return clipText(value, logLimits.fieldChars);
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    if (depth >= logLimits.depth) return `[array of ${value.length}]`;
    const kept = value.slice(0, logLimits.items).map((v) => clipFields(v, depth + 1));
    if (value.length > logLimits.items) kept.push(`…(${value.length - logLimits.items} more)`);
    return kept;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null)
    return value;
  if (depth >= logLimits.depth) return '[object]';
  const out: Record<string, unknown> = {};
  const entries = Object.entries(value);
  for (const [k, v] of entries.slice(0, logLimits.items))
    out[clipText(k, logLimits.fieldChars)] = clipFields(v, depth + 1);
  if (entries.length > logLimits.items) out['…'] = `${entries.length - logLimits.items} more keys`;
  return out;
}

/** pino's serialized error with its message and stack clipped. */
export function clipError<E extends { message?: unknown; stack?: unknown }>(e: E): E {
  const out: Record<string, unknown> = { ...e };
  if (typeof e.message === 'string') out.message = clipText(e.message, logLimits.messageChars);
  if (typeof e.stack === 'string') out.stack = clipText(e.stack, logLimits.stackChars);
  return out as E;
}

/**
 * Lets through at most `linesPerWindow` lines of one key (level and message) per window; the
 * first line dropped in a window schedules one report of how many were dropped at its end.
 */
export class RepeatLimiter {
  private readonly windows = new Map<string, { start: number; lines: number; dropped: number }>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly limits: { linesPerWindow: number; windowMs: number } = logLimits,
  ) {}

  /**
   * Whether a line of `key` may be written now; when not, `report` hears at the end of the window
   * how many lines of `key` it dropped.
   */
  admit(key: string, report: (dropped: number) => void): boolean {
    const now = this.now();
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.limits.windowMs) {
      w = { start: now, lines: 0, dropped: 0 };
      this.windows.set(key, w);
      // Keys are message texts from the code, a few hundred at most; this keeps the map small.
      if (this.windows.size > 1_000) this.prune(now);
    }
    if (w.lines < this.limits.linesPerWindow) {
      w.lines++;
      return true;
    }
    if (w.dropped++ === 0) {
      const window = w;
      setTimeout(
        () => report(window.dropped),
        Math.max(0, window.start + this.limits.windowMs - now),
      ).unref();
    }
    return false;
  }

  private prune(now: number): void {
    for (const [key, w] of this.windows)
      if (now - w.start >= this.limits.windowMs) this.windows.delete(key);
  }
}
