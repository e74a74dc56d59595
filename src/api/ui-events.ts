import type { ServerResponse } from 'node:http';
import type { UiChangeJson, UiTopic } from './ui-json.js';

type Subscribe = (listener: () => void) => () => void;

export interface UiEventSources {
  /** Change events of the catalog, the peerings, the imported services and the CA. */
  readonly subscriptions: readonly { readonly topic: UiTopic; readonly subscribe: Subscribe }[];
  /**
   * A value that changes when any connected proxy's sync state changes. xDS streams emit no events
   * (they are the hot path), so this is polled, and only while a UI is connected.
   */
  readonly proxiesFingerprint: () => string;
}

export interface UiEventTiming {
  /** Changes within this window go out as one event. */
  readonly coalesceMs: number;
  readonly proxiesPollMs: number;
  /** A comment line this often keeps proxies between here and the browser from closing it. */
  readonly keepAliveMs: number;
}

export const eventStreamHeaders = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
} as const;

const defaultTiming: UiEventTiming = { coalesceMs: 100, proxiesPollMs: 400, keepAliveMs: 15_000 };

/**
 * `GET /v1/ui/events` (issue 17 "Live"): a server-sent-events stream of
 * `event: change` / `data: {"topics":["catalog",…]}`, at most one per `coalesceMs`, so every
 * open page refetches what it shows within a second of a change. The stream carries topic names
 * only, never state: the page refetches through the API with its own token.
 */
export class UiEvents {
  private readonly clients = new Set<ServerResponse>();
  private readonly pending = new Set<UiTopic>();
  private readonly unsubscribe: (() => void)[];
  private flushTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private lastFingerprint = '';
  private readonly timing: UiEventTiming;

  constructor(
    private readonly sources: UiEventSources,
    timing: Partial<UiEventTiming> = {},
  ) {
    this.timing = { ...defaultTiming, ...timing };
    this.unsubscribe = sources.subscriptions.map(({ topic, subscribe }) =>
      subscribe(() => this.changed(topic)),
    );
  }

  get connected(): number {
    return this.clients.size;
  }

  /** Takes over `res` (already hijacked from fastify) until the client goes away or `close`. */
  attach(res: ServerResponse): void {
    res.writeHead(200, eventStreamHeaders);
    // `retry`: how soon EventSource-style clients reconnect; `ready`: the page can fetch now.
    res.write('retry: 1000\nevent: ready\ndata: {}\n\n');
    this.clients.add(res);
    res.on('close', () => this.detach(res));
    if (this.clients.size === 1) this.startTimers();
  }

  /** Ends every stream (the HTTP server is closing: an open stream would hold it open). */
  close(): void {
    for (const res of this.clients) res.end();
    this.clients.clear();
    this.stopTimers();
    for (const off of this.unsubscribe) off();
  }

  private detach(res: ServerResponse): void {
    this.clients.delete(res);
    if (this.clients.size === 0) this.stopTimers();
  }

  private changed(topic: UiTopic): void {
    if (this.clients.size === 0) return;
    this.pending.add(topic);
    this.flushTimer ??= setTimeout(() => this.flush(), this.timing.coalesceMs);
  }

  private flush(): void {
    this.flushTimer = undefined;
    const change: UiChangeJson = { topics: [...this.pending].sort() };
    this.pending.clear();
    if (change.topics.length === 0) return;
    const frame = `event: change\ndata: ${JSON.stringify(change)}\n\n`;
    for (const res of this.clients) res.write(frame);
  }

  private startTimers(): void {
    this.lastFingerprint = this.sources.proxiesFingerprint();
    this.pollTimer = setInterval(() => {
      const now = this.sources.proxiesFingerprint();
      if (now === this.lastFingerprint) return;
      this.lastFingerprint = now;
      this.changed('proxies');
    }, this.timing.proxiesPollMs);
    this.keepAliveTimer = setInterval(() => {
      for (const res of this.clients) res.write(': keep-alive\n\n');
    }, this.timing.keepAliveMs);
    this.pollTimer.unref();
    this.keepAliveTimer.unref();
  }

  private stopTimers(): void {
    clearInterval(this.pollTimer);
    clearInterval(this.keepAliveTimer);
    clearTimeout(this.flushTimer);
    this.pollTimer = this.keepAliveTimer = this.flushTimer = undefined;
    this.pending.clear();
  }
}
