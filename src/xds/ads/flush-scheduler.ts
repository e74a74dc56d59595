/** A stream the scheduler flushes (see AdsSession.runScheduledFlush and flushRest). */
export interface ScheduledStream {
  /** Flushes until the first response written; true when it stopped right after writing one. */
  runScheduledFlush(): boolean;
  /** Runs the rest of the flush. */
  flushRest(): void;
}

/**
 * The streams of one xDS server due a flush for a request, an ACK that unblocks one, a timer or a
 * drained socket. A burst of those from a thousand proxies becomes one immediate that flushes them
 * in turn, not a thousand. (A published view is flushed as it is published: see
 * AdsSession.flushNow.) Each server has its own, so two servers in one process do not flush each
 * other's streams.
 */
export class FlushScheduler {
  private readonly due = new Set<ScheduledStream>();
  private scheduled = false;

  /** Flushes `stream` in the next batch (once, however often it is enqueued before that). */
  enqueue(stream: ScheduledStream): void {
    this.due.add(stream);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  /** Streams waiting for the next batch. */
  get pending(): number {
    return this.due.size;
  }

  private drain(): void {
    this.scheduled = false;
    const batch = [...this.due];
    this.due.clear();
    // Every stream's response goes out before any stream's bookkeeping after it: the last write
    // of a push to thousands of proxies is not held up by work its ACK will not wait for.
    const wrote = batch.filter((s) => s.runScheduledFlush());
    for (const s of wrote) s.flushRest();
  }
}
