/**
 * What the fleet benchmarks' parent (the xDS server under test) and their client worker processes
 * say to each other over the fork IPC channel. Every request carries an id; the worker answers
 * each with one reply of the same id.
 */

/** Per proxy: what it holds, by type URL, as [name, version] pairs. */
export interface HeldState {
  readonly id: string;
  readonly types: Readonly<Record<string, readonly (readonly [string, string])[]>>;
}

/** What a worker's proxies received and did since the counters were last reset, summed. */
export interface Counters {
  /** Resources received (upserts), and the bytes of every response. */
  readonly resources: number;
  readonly bytes: number;
  /** Responses received per type URL. */
  readonly responses: Readonly<Record<string, number>>;
  /** Streams opened again after one ended (a reconnect). */
  readonly reconnects: number;
  /** Streams that ended with an error other than our own cancel. */
  readonly streamErrors: number;
  readonly staleData: number;
  readonly lastError: string;
}

export type Command =
  /** Opens a Delta stream for each node id (one HTTP/2 connection per `perConnection` streams). */
  | {
      readonly kind: 'connect';
      readonly address: string;
      readonly ids: readonly string[];
      readonly perConnection: number;
    }
  /** How many of the worker's proxies have received a response on their current stream. */
  | { readonly kind: 'ready-count' }
  /** Each proxy ends its stream and opens a new one `times` times, spread over `overMs`. */
  | { readonly kind: 'storm'; readonly times: number; readonly overMs: number }
  /** Resolves when every proxy's stream is open and answered again (after a restart or storm). */
  | { readonly kind: 'all-connected'; readonly timeoutMs: number }
  | { readonly kind: 'held' }
  | { readonly kind: 'counters'; readonly reset: boolean }
  | { readonly kind: 'cpu' }
  | { readonly kind: 'close' };

export type ToWorker = { readonly id: number; readonly command: Command };

export type FromWorker =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly message: string }
  /** A failure outside any request (a stream broke in a way a proxy cannot recover from). */
  | { readonly id: -1; readonly ok: false; readonly message: string };
