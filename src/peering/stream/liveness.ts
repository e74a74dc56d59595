/**
 * Heartbeats and the silence deadline of one stream (docs/architecture.md §6 "Stream": a Heartbeat
 * every 15 s, the stream torn down after 2 min of silence). Any message from the peer proves it
 * alive; before the first one the deadline is `firstTimeoutMs` (a dialer waiting for the acceptor
 * to answer its Open).
 */
export class Liveness {
  private interval: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private heardAny = false;

  constructor(
    private readonly opts: {
      readonly intervalMs: number;
      readonly timeoutMs: number;
      readonly firstTimeoutMs: number;
      readonly sendHeartbeat: () => void;
      /** `heardAny`: whether anything arrived before the silence. */
      readonly onSilence: (afterMs: number, heardAny: boolean) => void;
    },
  ) {}

  start(): void {
    this.opts.sendHeartbeat();
    this.interval = setInterval(() => this.opts.sendHeartbeat(), this.opts.intervalMs).unref();
    this.arm(this.opts.firstTimeoutMs);
  }

  /** Something arrived from the peer. */
  received(): void {
    if (!this.deadline) return;
    if (!this.heardAny) {
      this.heardAny = true;
      clearTimeout(this.deadline);
      this.arm(this.opts.timeoutMs);
    } else this.deadline.refresh();
  }

  stop(): void {
    clearInterval(this.interval);
    clearTimeout(this.deadline);
    this.interval = this.deadline = undefined;
  }

  private arm(ms: number): void {
    this.deadline = setTimeout(() => {
      this.stop();
      this.opts.onSilence(ms, this.heardAny);
    }, ms).unref();
  }
}
