import type { X509Certificate } from 'node:crypto';
import type {
  ExportedService,
  ExportedServiceList,
  ServerAddresses,
  TrustBundle,
} from '../../gen/isthmus/peering/v1/peering.js';
import type { IsthmusError } from '../../errors.js';
import type { ResourceUrl } from './resources.js';

/**
 * The seams between the stream engine and the rest of isthmus. The engine owns the wire (Open,
 * subscriptions, nonces, ACK/NACK, heartbeats, reconnects); peering records, the catalog and the
 * status tracker sit behind these interfaces and never see a gRPC call.
 */

/** The message types a stream carries in `Response.resource`. */
export type ReplicatedResource =
  | TrustBundle
  | ServerAddresses
  | ExportedServiceList
  | ExportedService;

/**
 * One replicated change: an upsert carries the full resource, a patch (ExportedService only) the
 * instances that changed and the IDs of those removed, a delete only its ID.
 */
export interface ResourceChange {
  readonly resourceId: string;
  readonly operation: 'upsert' | 'patch' | 'delete';
  readonly resource?: ReplicatedResource | undefined;
}

/** What the dialer sends first (`ReplicationMessage.Open`). `streamSecret` is never logged. */
/**
 * The trailer of a stream refused by a server that is not its cluster's leader (issue 15): the
 * leader's peering address, which the dialer dials next. Empty while no leader is known.
 */
export const peeringLeaderHeader = 'isthmus-peering-leader';

export interface StreamOpen {
  readonly peerId: string;
  readonly streamSecret: string;
  readonly remote: { readonly partition: string; readonly datacenter: string };
}

/** Decides whether an Open may start a stream, and for which peering. */
export interface StreamAuthority {
  /**
   * Resolves with the local name of the peering the stream belongs to, or throws an IsthmusError:
   * `permission_denied` for a wrong stream secret or a client certificate that does not chain to
   * the dialer roots pinned at ExchangeSecret (`peerCert` is undefined when the client sent none,
   * or one the TLS layer could not verify), `not_found`/`failed_precondition` for an unknown or
   * deleted peering, `invalid_argument` for a malformed Open. It must not change any state when it
   * throws. `deleting: true` (the peering was deleted here while the dialer was away) makes the
   * acceptor answer with Terminated and end the stream instead of replicating.
   */
  verifyOpen(
    open: StreamOpen,
    peerCert: X509Certificate | undefined,
    /** Intermediates the dialer sent for its certificate (a federation secondary's leaf, §6c). */
    intermediates?: readonly X509Certificate[],
  ): Promise<OpenVerdict>;
}

export interface OpenVerdict {
  readonly peeringName: string;
  readonly deleting?: boolean | undefined;
}

/** What this side exports to the peer. */
export interface ResourceSource {
  /**
   * Emits the current state of `resourceUrl` at once (one upsert per resource), then every change,
   * until the returned function is called. Emitting synchronously from inside `subscribe` is fine.
   */
  subscribe(resourceUrl: ResourceUrl, emit: (change: ResourceChange) => void): () => void;
  /**
   * The peer NACKed the last change sent for `resourceId` (a patch against a version it does not
   * hold, or a refused resource): the source may send the full state again.
   */
  rejected?(resourceUrl: ResourceUrl, resourceId: string): void;
}

/** What this side imports from the peer. */
export interface ResourceSink {
  /**
   * Applies one change; responses are applied one at a time, in the order they arrived. Throwing
   * (or rejecting) NACKs the response with the error's message; the stream stays up.
   */
  apply(resourceUrl: ResourceUrl, change: ResourceChange): void | Promise<void>;
  /**
   * Optional: applies the responses that arrived while the last ones were applied, in order and
   * with the outcome of applying each in turn (a later one sees what the earlier ones did), and
   * resolves with each one's NACK error or `undefined` (ACK). A sink that commits them together
   * makes a burst of responses cost one commit (issue 14).
   */
  applyBatch?(changes: readonly SinkChange[]): Promise<readonly (IsthmusError | undefined)[]>;
}

/** One response of a batch given to `ResourceSink.applyBatch`. */
export interface SinkChange {
  readonly resourceUrl: ResourceUrl;
  readonly change: ResourceChange;
}

/**
 * Stream status as it happens, for the peering's StreamStatus and metrics. Every callback is
 * optional. `onFailing` and `onTerminated` are each the last call for a stream; a dialer calls
 * `onActive` again after it reconnected.
 */
export interface StreamObserver {
  /** Acceptor: the Open was verified. Dialer: the acceptor answered the Open. */
  onActive?(): void;
  /** The stream is down or could not be opened (a dialer keeps retrying). */
  onFailing?(error: string): void;
  onHeartbeat?(at: Date): void;
  onReceive?(at: Date): void;
  onSend?(at: Date): void;
  /** One change was written, as `messageBytes.length` messages (chunks) of these sizes. */
  onResponseSent?(sent: SentDetail): void;
  /** The peer rejected one of our responses. */
  onNack?(message: string, detail: NackDetail): void;
  /** The peer deleted the peering (it sent `Terminated`). */
  onTerminated?(): void;
}

export interface SentDetail {
  readonly resourceUrl: ResourceUrl;
  readonly resourceId: string;
  readonly operation: ResourceChange['operation'];
  readonly messageBytes: readonly number[];
}

export interface NackDetail {
  readonly resourceUrl: string;
  readonly resourceId: string;
  readonly nonce: string;
  readonly code: number;
}

/** Heartbeat and deadline settings shared by both ends (milliseconds). */
export interface StreamTimings {
  /** How often a Heartbeat is sent (docs/architecture.md §6 "Stream": 15 s). */
  readonly heartbeatIntervalMs?: number | undefined;
  /** The stream is torn down after this long without any message from the peer (2 min). */
  readonly heartbeatTimeoutMs?: number | undefined;
  /**
   * Acceptor: longest wait for the Open and its verification. Dialer: for the acceptor's first
   * message (10 s).
   */
  readonly openTimeoutMs?: number | undefined;
  /** Longest a sink may take to apply one change before the stream is torn down (30 s). */
  readonly applyTimeoutMs?: number | undefined;
}

/** Every timing set, as a stream runs with them. */
export type ResolvedTimings = { readonly [K in keyof StreamTimings]-?: number };

export const defaultTimings: ResolvedTimings = {
  heartbeatIntervalMs: 15_000,
  heartbeatTimeoutMs: 120_000,
  openTimeoutMs: 10_000,
  applyTimeoutMs: 30_000,
};

/** Just the timing settings of a larger options object. */
export function timingsOf(opts: StreamTimings): StreamTimings {
  const { heartbeatIntervalMs, heartbeatTimeoutMs, openTimeoutMs, applyTimeoutMs } = opts;
  return { heartbeatIntervalMs, heartbeatTimeoutMs, openTimeoutMs, applyTimeoutMs };
}
