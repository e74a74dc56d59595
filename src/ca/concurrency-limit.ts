/**
 * Runs at most `max` tasks at once; the others wait their turn in order. The CA issues leaves
 * through one, so ten thousand proxies asking at a server's start (or a rotation re-issuing every
 * leaf) queue here instead of starting ten thousand key generations at once, and the event loop
 * keeps answering xDS between them (bench/leaf-issuance).
 */
export class ConcurrencyLimit {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be ≥ 1, not ${max}`);
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((go) => this.waiting.push(go));
    else this.running++;
    try {
      return await task();
    } finally {
      // The slot passes straight to the next task in line, so `running` stays as it is.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /** Tasks waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }
}
