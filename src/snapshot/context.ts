import type { CatalogReader } from '../catalog/types.js';
import type { CaRoots } from '../ca/types.js';
import type { ImportedInstance } from '../peering/imported.js';

/** A peer's trust bundle as the peering record holds it (replicated from the peer). */
export interface PeerBundle {
  readonly peer: string;
  readonly trustDomain: string;
  readonly pems: readonly string[];
}

/**
 * What the builders read of cluster peering: live peers, their bundles, and what they export to us.
 */
export interface PeeringView {
  /** Local names of the peerings that are neither deleting nor terminated, sorted. */
  peerNames(): readonly string[];
  /** The peer's bundle; undefined until both its trust domain and roots are known. */
  bundle(peer: string): PeerBundle | undefined;
  /** Names of the services imported from `peer`, sorted. */
  importedServiceNames(peer: string): readonly string[];
  importedInstances(peer: string, service: string, namespace?: string): readonly ImportedInstance[];
  /**
   * Peerings this cluster dialed: the peer's server name and addresses (gateways route them when
   * peering through gateways).
   */
  peerServers?(): readonly PeerServer[];
}

export interface PeerServer {
  readonly peer: string;
  /** `server.<dc>.peering.<td>` of the peer */
  readonly serverName: string;
  /** `host:port` */
  readonly addresses: readonly string[];
}

export const noPeering: PeeringView = {
  peerNames: () => [],
  bundle: () => undefined,
  importedServiceNames: () => [],
  importedInstances: () => [],
};

/**
 * What the builders read of WAN federation (docs/architecture.md §6c): the other datacenters'
 * mesh gateways from the replicated federation states, and this server's federation port.
 */
export interface FederationView {
  /** Other datacenters that have gateways in a federation state, sorted. */
  remoteDatacenters(): readonly string[];
  /** A datacenter's gateways that expose its servers (WAN addresses), sorted. */
  remoteGateways(dc: string): readonly { readonly address: string; readonly port: number }[];
  /** This server's federation port (`host:port`), where exposing gateways route server SNIs. */
  localServerAddresses(): readonly string[];
  /** This server's node name (`<node>.server.<dc>.consul`). */
  readonly nodeName: string;
}

/** What every builder reads: the catalog, this cluster's names, and the CA roots. */
export interface BuildContext {
  readonly catalog: CatalogReader;
  readonly datacenter: string;
  readonly trustDomain: string;
  readonly roots: CaRoots;
  /** A peer's trust domain by its local name (undefined while unknown). */
  readonly peerTrustDomain: (peer: string) => string | undefined;
  /** Cluster peering (absent: no peers). */
  readonly peering?: PeeringView | undefined;
  /**
   * This server's own peering port (`host:port`), where a gateway routes
   * `server.<dc>.peering.<td>`.
   */
  readonly localPeeringAddresses?: readonly string[] | undefined;
  /** WAN federation (absent: this datacenter is not federated). */
  readonly federation?: FederationView | undefined;
}

/** A built snapshot and the service names whose changes must rebuild it. */
export interface Built<S> {
  readonly snapshot: S;
  /**
   * Service names this proxy depends on; `*` means every change; `peer:<name>/<service>` a peer's
   * imports of a service.
   */
  readonly deps: ReadonlySet<string>;
}
