/**
 * What the benchmark parent (the xDS server under test) and its client worker processes say to
 * each other over the fork IPC channel. Every timestamp is wall-clock milliseconds taken with
 * `performance.timeOrigin + performance.now()`, comparable across processes on one machine.
 */
import { performance } from 'node:perf_hooks';
import type { ClientKind } from '../shared/bidi-client.js';

export type Api = 'delta' | 'sotw';

/** `proxy`: one HTTP/2 connection per proxy, as Envoy has; `worker`: one per worker process. */
export type ConnectionMode = 'proxy' | 'worker';

/**
 * Round r's endpoint change puts port `markerPortBase + r` first in the ClusterLoadAssignment of
 * `markerCluster`; a client knows which round it has applied by reading that port.
 */
export const markerPortBase = 20_000;
export const markerCluster = 'cluster-0';

/** The view every proxy is given: how many resources of each type make it "synced". */
export interface Expected {
  readonly clusters: number;
  readonly endpoints: number;
  readonly secrets: number;
  readonly listeners: number;
  /** The SDS secret every cluster's transport socket names (subscribed when clusters arrive). */
  readonly secretName: string;
}

/** The raw reference's one bidi method (identity serializers on both sides). */
export const rawPath = '/isthmus.bench.RawFanout/Stream';

export type ToWorker =
  | {
      readonly kind: 'connect-xds';
      readonly address: string;
      readonly api: Api;
      readonly conn: ConnectionMode;
      /** The proxies' gRPC client; the raw streams ride their connections, so use it too. */
      readonly client: ClientKind;
      readonly ids: readonly number[];
      readonly expected: Expected;
    }
  | { readonly kind: 'close-xds' }
  /**
   * One raw stream per proxy of the worker, on that proxy's own client (its connection), to the
   * xDS server's port: the raw reference has the push path's connection layout.
   */
  | { readonly kind: 'connect-raw' }
  | { readonly kind: 'close-raw' }
  /**
   * Raw streams answer each message with this many bytes (an ACK-sized request), or not at all (0).
   */
  | { readonly kind: 'raw-ack'; readonly bytes: number }
  | { readonly kind: 'cpu'; readonly key: `cpu:${number}` };

/**
 * `synced`: a proxy received and ACKed its whole initial view; `acked:<r>`: a proxy ACKed round r's
 * endpoint change; `raw:<r>`: a raw stream received its r-th message (and, in ACK mode, wrote its
 * answer); `raw-ack`: a worker switched ACK mode; `ready`/`closed`: one per worker;
 * `cpu:<n>`: answers query n with the worker's CPU time so far (ms) instead of a timestamp.
 */
export type ReportKey =
  | 'ready'
  | 'synced'
  | 'closed'
  | 'raw-ack'
  | `acked:${number}`
  | `raw:${number}`
  | `cpu:${number}`;

export type FromWorker =
  | { readonly kind: 'report'; readonly key: ReportKey; readonly times: readonly number[] }
  | { readonly kind: 'error'; readonly message: string };

export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}
