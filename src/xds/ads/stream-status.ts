import type { Node } from '../../gen/envoy/config/core/v3/base.js';
import type { ProxyView } from '../cache/proxy-view.js';
import type { XdsTypeUrl } from '../types.js';

export type AdsApi = 'sotw' | 'delta';

/** A proxy's rejection of a response (or, in `nacked`, of one resource's version in it). */
export interface NackRecord {
  readonly version: string;
  readonly message: string;
  readonly nonce: string;
  readonly at: Date;
}

/**
 * One type of one stream as status readers see it: a copy taken when asked for, never the
 * stream's own state (as go-control-plane keeps its status apart from its server).
 */
export interface TypeStatus {
  readonly typeUrl: XdsTypeUrl;
  /** The client has asked for this type at least once on this stream. */
  readonly requested: boolean;
  /** A legacy (empty first request) or explicit (`*`) wildcard subscription. */
  readonly wildcard: boolean;
  readonly subscribed: ReadonlySet<string>;
  /** name → version last sent (Delta: the version the client holds as far as we know). */
  readonly sent: ReadonlyMap<string, string>;
  /** name → the version the client ACKed last. */
  readonly acked: ReadonlyMap<string, string>;
  /** name → the client's rejection of the version it was last sent. */
  readonly nacked: ReadonlyMap<string, NackRecord>;
  /** The newest NACK of the type on this stream (it stays after a later ACK). */
  readonly lastNack: NackRecord | undefined;
  readonly lastNonce: string;
  /** SotW: version_info of the last response sent, and of the last one ACKed. */
  readonly sentVersionInfo: string;
  readonly ackedVersionInfo: string;
  /** Responses written and not yet ACKed or NACKed. */
  readonly pending: number;
}

/** One ADS stream as status readers (proxy status, CSDS, troubleshoot, the HTTP API) see it. */
export interface StreamStatus {
  readonly id: number;
  readonly api: AdsApi;
  readonly node: Node | undefined;
  readonly nodeId: string | undefined;
  readonly connectedAt: Date;
  /** The view the stream pushes from. */
  readonly view: ProxyView | undefined;
  /** Per type, in the order the client first asked for them. */
  readonly types: ReadonlyMap<XdsTypeUrl, TypeStatus>;
}

/** Whether the stream's subscription to `status`'s type covers `name`. */
export function subscribes(status: TypeStatus | undefined, name: string): boolean {
  return status !== undefined && (status.wildcard || status.subscribed.has(name));
}
