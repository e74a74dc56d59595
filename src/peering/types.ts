/**
 * Peering records, the domain form (camelCase, as the Store holds them since record version 2,
 * peering/records.ts). The HTTP API shows them in Consul's `api.Peering` PascalCase, converting at
 * its boundary (src/api/peering-routes.ts); `peerTrustDomain` and `manualServerAddresses` are
 * internal, `streamStatus.lastError` / `lastNack` are isthmus additions. Secrets never live here:
 * they are in separate keys (see peerings.ts) and never leave the server.
 */

/**
 * PENDING: acceptor, token issued. ESTABLISHING: dialer, secret exchanged, stream not yet up.
 * ACTIVE: stream up. FAILING: stream down or heartbeats late (`streamStatus.lastError` says why).
 * DELETING: deleted here, the peer is being told. TERMINATED: the peer deleted it (re-establish
 * with a new token).
 */
export type PeeringState =
  | 'PENDING'
  | 'ESTABLISHING'
  | 'ACTIVE'
  | 'FAILING'
  | 'DELETING'
  | 'TERMINATED';

/** States in which the token was used: the dialer keeps a stream, the acceptor expects one. */
export const establishedStates: ReadonlySet<PeeringState> = new Set<PeeringState>([
  'ESTABLISHING',
  'ACTIVE',
  'FAILING',
]);

export interface RemoteInfo {
  readonly partition: string;
  readonly datacenter: string;
}

/** What the replication stream reports (the stream engine writes it through `setStreamStatus`). */
export interface StreamStatus {
  /** Names of the services imported from the peer / exported to it. */
  readonly importedServices: readonly string[];
  readonly exportedServices: readonly string[];
  /** RFC 3339 times of the last heartbeat received, last message received and last sent. */
  readonly lastHeartbeat?: string | undefined;
  readonly lastReceive?: string | undefined;
  readonly lastSend?: string | undefined;
  /** Why the stream last failed, or what of the peer's was last refused; cleared on recovery. */
  readonly lastError?: string | undefined;
  /** The peer's last NACK of something we sent. */
  readonly lastNack?: string | undefined;
  /**
   * What we NACKed of the peer's and it has not replaced with an accepted version since (its
   * claims or data were refused, docs/architecture.md §6 "Claims"): one entry per resource, the
   * latest 16.
   */
  readonly rejectedImports?: readonly RejectedImport[] | undefined;
}

export interface RejectedImport {
  /** The trust bundle, the server addresses, the exported-services list, or one service. */
  readonly resource: 'trust-bundle' | 'server-addresses' | 'exported-services' | 'service';
  readonly resourceId: string;
  /** The NACK's message: every problem with its field. */
  readonly reason: string;
}

export interface Peering {
  readonly id: string;
  readonly name: string;
  readonly state: PeeringState;
  /** The peer's ID for this peering: set on the dialer (from the token), empty on the acceptor. */
  readonly peerId: string;
  /** Dialer: the acceptor's TLS name and addresses (dialed in order). Empty on the acceptor. */
  readonly peerServerName: string;
  readonly peerServerAddresses: readonly string[];
  /**
   * The peer's CA roots. Dialer: the acceptor's (from the token, then replicated). Acceptor: the
   * dialer's roots pinned at ExchangeSecret: the stream's client certificate must chain to them.
   */
  readonly peerCaPems: readonly string[];
  readonly peerTrustDomain: string;
  /**
   * Dialer: the token named the addresses to dial (`ManualServerAddresses`, from the acceptor's
   * `ServerExternalAddresses`), so the acceptor's replicated server addresses do not replace them
   * (as in Consul). Internal, like peerTrustDomain.
   */
  readonly manualServerAddresses?: boolean | undefined;
  readonly meta: Readonly<Record<string, string>>;
  readonly remote: RemoteInfo;
  readonly streamStatus: StreamStatus;
  readonly createIndex: number;
  readonly modifyIndex: number;
  /** RFC 3339 time the peering was deleted here (state DELETING). */
  readonly deletedAt?: string | undefined;
}

export type PeeringEvent =
  | {
      readonly kind: 'peering-upserted';
      readonly peering: Peering;
      readonly previous?: Peering | undefined;
    }
  | { readonly kind: 'peering-removed'; readonly peering: Peering };

export const emptyStreamStatus: StreamStatus = { importedServices: [], exportedServices: [] };

/** A peering this cluster dials (it established with a token); the other side accepts. */
export function isDialer(p: Peering): boolean {
  return p.peerServerAddresses.length > 0;
}

/**
 * Default: the stream is torn down after 2 min without a heartbeat (docs/architecture.md §6
 * "Stream").
 */
export const defaultHealthyWindowMs = 120_000;

/**
 * Healthy = ACTIVE and the peer was heard from (heartbeat or any message) within `windowMs`: the
 * API's `Healthy` and the `isthmus_peering_healthy` gauge.
 */
export function isHealthy(p: Peering, now: number, windowMs = defaultHealthyWindowMs): boolean {
  if (p.state !== 'ACTIVE') return false;
  const heard = Math.max(timeOf(p.streamStatus.lastHeartbeat), timeOf(p.streamStatus.lastReceive));
  return heard > 0 && now - heard <= windowMs;
}

/** Seconds since the last heartbeat, or undefined when none was received. */
export function heartbeatAgeSeconds(p: Peering, now: number): number | undefined {
  const t = timeOf(p.streamStatus.lastHeartbeat);
  return t > 0 ? Math.max(0, (now - t) / 1000) : undefined;
}

function timeOf(iso: string | undefined): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? 0 : t;
}
