/**
 * Peering records as the Store holds them and the HTTP API shows them: Consul's field names
 * (`api.Peering`), plus `PeerTrustDomain` (internal) and `StreamStatus.LastError` / `LastNack`.
 * Secrets never live here: they are in separate keys (see peerings.ts) and never leave the server.
 */

/**
 * PENDING: acceptor, token issued. ESTABLISHING: dialer, secret exchanged, stream not yet up.
 * ACTIVE: stream up. FAILING: stream down or heartbeats late (`StreamStatus.LastError` says why).
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
  readonly Partition: string;
  readonly Datacenter: string;
}

/** What the replication stream reports (the stream engine writes it through `setStreamStatus`). */
export interface StreamStatus {
  /** Names of the services imported from the peer / exported to it. */
  readonly ImportedServices: readonly string[];
  readonly ExportedServices: readonly string[];
  /** RFC 3339 times of the last heartbeat received, last message received and last sent. */
  readonly LastHeartbeat?: string | undefined;
  readonly LastReceive?: string | undefined;
  readonly LastSend?: string | undefined;
  /** Why the stream last failed (kept after recovery, like Consul's LastReceiveError). */
  readonly LastError?: string | undefined;
  /** The peer's last NACK of something we sent. */
  readonly LastNack?: string | undefined;
}

export interface Peering {
  readonly ID: string;
  readonly Name: string;
  readonly State: PeeringState;
  /** The peer's ID for this peering: set on the dialer (from the token), empty on the acceptor. */
  readonly PeerID: string;
  /** Dialer: the acceptor's TLS name and addresses (dialed in order). Empty on the acceptor. */
  readonly PeerServerName: string;
  readonly PeerServerAddresses: readonly string[];
  /**
   * The peer's CA roots. Dialer: the acceptor's (from the token, then replicated). Acceptor: the
   * dialer's roots pinned at ExchangeSecret: the stream's client certificate must chain to them.
   */
  readonly PeerCAPems: readonly string[];
  readonly PeerTrustDomain: string;
  /**
   * Dialer: the token named the addresses to dial (`ManualServerAddresses`, from the acceptor's
   * `ServerExternalAddresses`), so the acceptor's replicated server addresses do not replace them
   * (as in Consul). Internal, like PeerTrustDomain.
   */
  readonly ManualServerAddresses?: boolean | undefined;
  readonly Meta: Readonly<Record<string, string>>;
  readonly Remote: RemoteInfo;
  readonly StreamStatus: StreamStatus;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
  /** RFC 3339 time the peering was deleted here (state DELETING). */
  readonly DeletedAt?: string | undefined;
}

export type PeeringEvent =
  | {
      readonly kind: 'peering-upserted';
      readonly peering: Peering;
      readonly previous?: Peering | undefined;
    }
  | { readonly kind: 'peering-removed'; readonly peering: Peering };

export const emptyStreamStatus: StreamStatus = { ImportedServices: [], ExportedServices: [] };

/** A peering this cluster dials (it established with a token); the other side accepts. */
export function isDialer(p: Peering): boolean {
  return p.PeerServerAddresses.length > 0;
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
  if (p.State !== 'ACTIVE') return false;
  const heard = Math.max(timeOf(p.StreamStatus.LastHeartbeat), timeOf(p.StreamStatus.LastReceive));
  return heard > 0 && now - heard <= windowMs;
}

/** Seconds since the last heartbeat, or undefined when none was received. */
export function heartbeatAgeSeconds(p: Peering, now: number): number | undefined {
  const t = timeOf(p.StreamStatus.LastHeartbeat);
  return t > 0 ? Math.max(0, (now - t) / 1000) : undefined;
}

function timeOf(iso: string | undefined): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? 0 : t;
}
