import type { ServerResponse } from 'node:http';
import type { UiChangeJson, UiTopic } from './ui-json.js';

type Subscribe = (listener: () => void) => () => void;

export interface UiEventSources {
  /** Change events of the catalog, the peerings, the imported services and the CA. */
  readonly subscriptions: readonly { readonly topic: UiTopic; readonly subscribe: Subscribe }[];
  /**
   * The xDS server's note that a proxy's sync state may have changed (ACK, NACK, connect,
   * disconnect, push). It fires on the push path, thousands of times per publish, so it is
   * subscribed to only while a UI is connected: with none, the xDS server calls no listener.
   */
  readonly proxies: Subscribe;
  /**
   * Several servers: follows the others' proxy changes on behalf of one open UI, with its request
   * headers (`ui-relay.ts`); returns the function that stops following.
   */
  readonly otherServers?: (
    headers: Readonly<Record<string, string>>,
    onProxies: () => void,
  ) => () => void;
}

export interface UiEventTiming {
  /** Changes within this window go out as one event. */
  readonly coalesceMs: number;
  /** A comment line this often keeps proxies between here and the browser from closing it. */
  readonly keepAliveMs: number;
}

export const eventStreamHeaders = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
} as const;

const defaultTiming: UiEventTiming = { coalesceMs: 100, keepAliveMs: 15_000 };

/**
 * `GET /v1/ui/events` (issue 17 "Live"): a server-sent-events stream of
 * `event: change` / `data: {"topics":["catalog",…]}`, at most one per `coalesceMs`, so every
 * open page refetches what it shows within a second of a change. The stream carries topic names
 * only, never state: the page refetches through the API with its own token.
 */
export class UiEvents {
  /** Each open stream, with the function that stops its relays from the other servers. */
  private readonly clients = new Map<ServerResponse, () => void>();
  private readonly pending = new Set<UiTopic>();
  private readonly unsubscribe: (() => void)[];
  private flushTimer: NodeJS.Timeout | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private unwatchProxies: (() => void) | undefined;
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

  /**
   * Takes over `res` (already hijacked from fastify) until the client goes away or `close`. With
   * `relayHeaders` (a page, not another server's relay) the other servers' proxy changes are
   * followed too, with those headers.
   */
  attach(res: ServerResponse, relayHeaders?: Readonly<Record<string, string>>): void {
    res.writeHead(200, eventStreamHeaders);
    // `retry`: how soon EventSource-style clients reconnect; `ready`: the page can fetch now.
    res.write('retry: 1000\nevent: ready\ndata: {}\n\n');
    const { otherServers } = this.sources;
    const stopRelays =
      relayHeaders && otherServers
        ? otherServers(relayHeaders, () => this.changed('proxies'))
        : () => undefined;
    this.clients.set(res, stopRelays);
    res.on('close', () => this.detach(res));
    if (this.clients.size === 1) this.watch();
  }

  /** Ends every stream (the HTTP server is closing: an open stream would hold it open). */
  close(): void {
    for (const [res, stopRelays] of this.clients) {
      stopRelays();
      res.end();
    }
    this.clients.clear();
    this.unwatch();
    for (const off of this.unsubscribe) off();
  }

  private detach(res: ServerResponse): void {
    this.clients.get(res)?.();
    this.clients.delete(res);
    if (this.clients.size === 0) this.unwatch();
  }

  private changed(topic: UiTopic): void {
    if (this.clients.size === 0 || this.pending.has(topic)) return;
    this.pending.add(topic);
    this.flushTimer ??= setTimeout(() => this.flush(), this.timing.coalesceMs);
  }

  private flush(): void {
    this.flushTimer = undefined;
    const change: UiChangeJson = { topics: [...this.pending].sort() };
    this.pending.clear();
    if (change.topics.length === 0) return;
    const frame = `event: change\ndata: ${JSON.stringify(change)}\n\n`;
    for (const res of this.clients.keys()) res.write(frame);
  }

  /** The first UI connected: follow the proxies and keep the streams alive. */
  private watch(): void {
    this.unwatchProxies = this.sources.proxies(() => this.changed('proxies'));
    this.keepAliveTimer = setInterval(() => {
      for (const res of this.clients.keys()) res.write(': keep-alive\n\n');
    }, this.timing.keepAliveMs);
    this.keepAliveTimer.unref();
  }

  private unwatch(): void {
    this.unwatchProxies?.();
    clearInterval(this.keepAliveTimer);
    clearTimeout(this.flushTimer);
    this.unwatchProxies = this.keepAliveTimer = this.flushTimer = undefined;
    this.pending.clear();
  }
}
