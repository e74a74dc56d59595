import type { ServiceInstance } from '../catalog/types.js';
import type { Leaf } from '../ca/types.js';
import {
  datacenterSni,
  datacenterWildcardSni,
  exportedClusterName,
  leafSecretName,
  localRootsSecretName,
  peeredServiceSni,
  peerInboundSecretName,
  federationNodeServerName,
  federationServerName,
  federationServerWildcard,
  peeringServerName,
  serviceSni,
  wanFederationMetaKey,
  serviceSpiffeId,
} from '../mesh/names.js';
import { parseHostPort } from '../config/host-port.js';
import { exportedNamesFor } from '../peering/exports.js';
import { peerThroughMeshGateways } from '../peering/through-gateways.js';
import type { BuildContext, Built, FederationView } from './context.js';
import {
  type Changes,
  importDeps,
  indexOfSorted,
  parseImportedServiceKey,
  type Piece,
  PieceMemo,
  reuse,
} from './pieces.js';
import { type GatewaySide, type SidedChain, gatewayListeners } from './gateway-listeners.js';
import {
  connectTimeoutMs,
  remoteDatacenterGateways,
  sidecarEndpoints,
  withEndpoints,
} from './lookups.js';
import { serviceProtocol } from '../catalog/lookups.js';
import { peeredEndpoints, peeredSidecars } from './peered.js';
import type {
  EdsClusterIR,
  EndpointIR,
  GatewayChainIR,
  MeshGatewaySnapshot,
  TrustDomainsSecretIR,
} from './types.js';

/**
 * A mesh gateway's snapshot (docs/architecture.md §5 "Mesh gateway"): TLS-inspecting listeners
 * that route by exact SNI only. Chains for services exported to each peer, remote datacenters,
 * peering servers and services imported from peers (mode `local`); an SNI that names none of them
 * matches no chain and Envoy closes the connection. No chain routes a local service's internal SNI.
 */
export function buildMeshGatewaySnapshot(
  gateway: ServiceInstance,
  ctx: BuildContext,
  leaf?: Leaf,
): Built<MeshGatewaySnapshot> {
  return new MeshGatewayBuilder().build(gateway, ctx, leaf, 'all');
}

/** What one exported service, one imported peer or the fixed routes add to a gateway. */
interface GatewayPart {
  readonly routes: readonly SidedChain[];
  readonly clusters: readonly EdsClusterIR[];
  readonly secrets: readonly TrustDomainsSecretIR[];
}

const noPart: GatewayPart = { routes: [], clusters: [], secrets: [] };

/**
 * Builds one gateway's snapshots again and again, each from the parts of the last that a change
 * did not touch (docs/architecture.md §2 "Incremental builds"): a part per exported service
 * (depends on that service), a part per imported service (depends on its imports from each peer,
 * `peer:<peer>/<service>`), with WAN federation a part per local service with sidecars (§6c), and
 * the remote datacenters, peering and federation servers, which only `all` rebuilds (a federation
 * state change is `all`). Kept parts are the same objects, so the publisher regenerates only the
 * resources of the parts that changed.
 */
export class MeshGatewayBuilder {
  private readonly exported = new PieceMemo<GatewayPart>();
  private readonly imported = new PieceMemo<GatewayPart>();
  private readonly federated = new PieceMemo<GatewayPart>();
  private last:
    | {
        readonly gateway: ServiceInstance;
        readonly leaf: Leaf | undefined;
        readonly roots: BuildContext['roots'];
        readonly consumers: ReadonlyMap<string, readonly string[]>;
        readonly wildcard: boolean;
        readonly fixed: GatewayPart;
        readonly routes: readonly SidedChain[];
        readonly snapshot: MeshGatewaySnapshot;
      }
    | undefined;

  build(
    gateway: ServiceInstance,
    ctx: BuildContext,
    leaf: Leaf | undefined,
    changes: Changes,
  ): Built<MeshGatewaySnapshot> {
    let last = changes === 'all' ? undefined : this.last;
    // A new leaf, roots or registration reach here as `all`; the check keeps a missed one safe.
    if (last && (last.gateway !== gateway || last.leaf !== leaf || last.roots !== ctx.roots))
      last = undefined;
    let dropped = new Map<string, Piece<GatewayPart>>();
    let importsDropped = new Map<string, Piece<GatewayPart>>();
    let patchable = false;
    const peers = importingPeers(ctx);
    if (!last) {
      this.exported.clear();
      this.imported.clear();
      this.federated.clear();
    } else {
      const keys = changes as ReadonlySet<string>;
      dropped = this.exported.invalidate(keys);
      importsDropped = this.imported.invalidate(keys);
      // The patch path swaps the clusters of exported and imported services: a federated part
      // dropped, or a part that is new, means assemble whole.
      const federatedDropped = this.federated.invalidate(keys).size;
      patchable =
        federatedDropped === 0 &&
        !gainsFederatedPart(ctx, this.federated, keys) &&
        !gainsImportedPart(ctx, this.imported, importsDropped, peers, keys);
    }
    let consumers = last?.consumers;
    if (!consumers || (last?.wildcard && exportsMayChange(ctx, consumers, changes))) {
      consumers = exportConsumers(ctx);
      this.exported.retain(new Set(consumers.keys()));
      if (last) last = { ...last, consumers };
    }
    const patched =
      last && patchable && consumers === this.last?.consumers
        ? this.patch(last, dropped, importsDropped, peers, ctx, leaf)
        : undefined;
    if (last && patched) {
      this.last = { ...last, snapshot: patched };
      return { snapshot: patched, deps: gatewayDeps };
    }
    const parts: GatewayPart[] = [];
    for (const [service, peers] of consumers)
      parts.push(
        this.exported.get(service, () => ({
          value: exportPart(service, peers, ctx, leaf, dropped.get(service)?.value),
          deps: [service],
        })),
      );
    const fixed = last?.fixed ?? fixedPart(ctx, gateway);
    parts.push(fixed);
    if (ctx.federation) {
      const services = servicesWithSidecars(ctx);
      this.federated.retain(new Set(services));
      for (const service of services)
        parts.push(
          this.federated.get(service, () => ({
            value: federatedPart(ctx, service),
            deps: [service],
          })),
        );
    }
    const imports = importedServiceNames(ctx, peers);
    this.imported.retain(new Set(imports));
    for (const service of imports)
      parts.push(
        this.imported.get(service, () =>
          importedPiece(ctx, peers, service, importsDropped.get(service)?.value),
        ),
      );
    const snapshot = this.assemble(gateway, ctx, leaf, parts, last);
    this.last = {
      gateway,
      leaf,
      roots: ctx.roots,
      consumers,
      wildcard: exportsWildcard(ctx),
      fixed,
      routes: parts.flatMap((p) => p.routes),
      snapshot,
    };
    return { snapshot, deps: gatewayDeps };
  }

  /**
   * The last snapshot with the rebuilt exports' clusters swapped in where their predecessors stood,
   * when nothing else changed: the same chains and secrets (exportPart hands back the previous
   * ones when equal), the same cluster names. Work proportional to the change, not to the exports
   * (issue 14); undefined when the change reshaped the snapshot, which is then assembled whole.
   */
  private patch(
    last: NonNullable<MeshGatewayBuilder['last']>,
    dropped: ReadonlyMap<string, Piece<GatewayPart>>,
    importsDropped: ReadonlyMap<string, Piece<GatewayPart>>,
    peers: readonly string[],
    ctx: BuildContext,
    leaf: Leaf | undefined,
  ): MeshGatewaySnapshot | undefined {
    const swap = new ClusterSwap(last.snapshot.clusters);
    for (const [service, { value: before }] of dropped) {
      const consumers = last.consumers.get(service);
      if (!consumers) return undefined;
      const part = this.exported.get(service, () => ({
        value: exportPart(service, consumers, ctx, leaf, before),
        deps: [service],
      }));
      if (!swap.part(before, part)) return undefined;
    }
    for (const [service, { value: before }] of importsDropped) {
      const part = this.imported.get(service, () => importedPiece(ctx, peers, service, before));
      if (!swap.part(before, part)) return undefined;
    }
    return swap.clusters ? { ...last.snapshot, clusters: swap.clusters } : last.snapshot;
  }

  private assemble(
    gateway: ServiceInstance,
    ctx: BuildContext,
    leaf: Leaf | undefined,
    parts: readonly GatewayPart[],
    last: MeshGatewayBuilder['last'],
  ): MeshGatewaySnapshot {
    const routes = parts.flatMap((p) => p.routes);
    const clusters = parts.flatMap((p) => p.clusters);
    const peerInbound = new Map<string, TrustDomainsSecretIR>();
    for (const p of parts) for (const secret of p.secrets) peerInbound.set(secret.name, secret);
    // The listeners hold every chain: kept whole while every chain is the one they were built with.
    const listeners =
      last && sameItems(last.routes, routes)
        ? last.snapshot.listeners
        : gatewayListeners(gateway, routes);
    const secrets =
      peerInbound.size > 0 && leaf
        ? ((last?.snapshot.leaf && last.snapshot.peerInbound?.length === peerInbound.size
            ? sharedSecrets(last.snapshot, peerInbound)
            : undefined) ?? {
            leaf: {
              name: leafSecretName(leaf.spiffeId),
              certPem: leaf.certPem,
              keyPem: leaf.keyPem,
            },
            roots: [{ name: localRootsSecretName, pems: ctx.roots.roots.map((r) => r.certPem) }],
            peerInbound: [...peerInbound.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
          })
        : {};
    return {
      kind: 'mesh-gateway',
      proxyId: gateway.id,
      listeners,
      clusters: clusters.sort((a, b) => (a.name < b.name ? -1 : 1)),
      ...secrets,
    };
  }
}

/**
 * The last snapshot's clusters with rebuilt parts' clusters swapped in where their predecessors
 * stood; `clusters` stays undefined while nothing was swapped.
 */
class ClusterSwap {
  clusters: EdsClusterIR[] | undefined;

  constructor(private readonly last: readonly EdsClusterIR[]) {}

  /**
   * Swaps `now`'s clusters in for `before`'s; false when the part changed shape (other routes or
   * secrets, clusters added, removed or renamed), which only a whole assembly can apply.
   */
  part(before: GatewayPart, now: GatewayPart): boolean {
    if (now.routes !== before.routes || now.secrets !== before.secrets) return false;
    if (now.clusters.length !== before.clusters.length) return false;
    for (let i = 0; i < now.clusters.length; i++) {
      const [was, is] = [before.clusters[i]!, now.clusters[i]!];
      if (was === is) continue;
      this.clusters ??= [...this.last];
      const at = indexOfSorted(this.clusters, was.name, (c) => c.name);
      if (this.clusters[at] !== was || is.name !== was.name) return false;
      this.clusters[at] = is;
    }
    return true;
  }
}

/** The last snapshot's secrets, when each peer secret is the very one the parts hold now. */
function sharedSecrets(
  last: MeshGatewaySnapshot,
  peerInbound: ReadonlyMap<string, TrustDomainsSecretIR>,
): Pick<MeshGatewaySnapshot, 'leaf' | 'roots' | 'peerInbound'> | undefined {
  const same = last.peerInbound?.every((s) => peerInbound.get(s.name) === s);
  return same ? { leaf: last.leaf, roots: last.roots, peerInbound: last.peerInbound } : undefined;
}

/** What a gateway depends on: everything (docs/architecture.md §2 "Snapshot"). */
const gatewayDeps: ReadonlySet<string> = new Set(['*']);

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One exported service's chains (one per consuming peer) and cluster; none without sidecars. */
function exportPart(
  service: string,
  peers: readonly string[],
  ctx: BuildContext,
  leaf: Leaf | undefined,
  previous?: GatewayPart,
): GatewayPart {
  const e = exportedService(service, peers, ctx);
  if (!e) return noPart;
  const part = newExportPart(e, ctx, leaf);
  if (!previous) return part;
  return {
    routes: reuse(previous.routes, part.routes),
    clusters: part.clusters.map((c, i) => reuse(previous.clusters[i], c)),
    secrets: reuse(previous.secrets, part.secrets),
  };
}

function newExportPart(e: ExportedService, ctx: BuildContext, leaf: Leaf | undefined): GatewayPart {
  const terminated = leaf ? terminatedExport(e, leaf, ctx) : undefined;
  const statPrefix = `mesh_gateway_exported.${e.service}`;
  const { chains, cluster } = terminated ?? {
    chains: e.peers.map((p) => ({ serverNames: [p.sni], cluster: e.cluster.name, statPrefix })),
    cluster: e.cluster,
  };
  return {
    routes: chains.map((chain) => ({ side: 'wan' as const, chain })),
    clusters: [cluster],
    secrets: terminated?.secrets ?? [],
  };
}

/** Remote datacenters, peering and federation servers: rebuilt only with everything else. */
function fixedPart(ctx: BuildContext, gateway: ServiceInstance): GatewayPart {
  const routes: SidedChain[] = [];
  const clusters: EdsClusterIR[] = [];
  const exposesServers = ctx.federation !== undefined && exposesFederatedServers(gateway);
  for (const dc of remoteDatacenters(ctx)) {
    const name = datacenterSni(ctx.trustDomain, dc);
    // Another datacenter's servers are reached through its gateways like its services (§6c).
    const serverNames = exposesServers
      ? [federationServerName(dc), federationServerWildcard(dc)]
      : [];
    routes.push({
      side: 'both',
      chain: {
        serverNames: [datacenterWildcardSni(ctx.trustDomain, dc), ...serverNames],
        cluster: name,
        statPrefix: `mesh_gateway_remote.${dc}`,
      },
    });
    const endpoints = remoteDatacenterGateways(dc, ctx);
    clusters.push({ name, protocol: 'tcp', connectTimeoutMs, ...withEndpoints(endpoints) });
  }
  if (exposesServers && ctx.federation) {
    const local = localFederationServers(ctx, ctx.federation);
    if (local) {
      routes.push({ side: 'wan', chain: local.chain });
      clusters.push(local.cluster);
    }
  }
  for (const s of peeringServers(ctx)) {
    const chain = { serverNames: [s.serverName], cluster: s.serverName, statPrefix: s.statPrefix };
    routes.push({ side: s.side, chain });
    clusters.push({
      name: s.serverName,
      protocol: 'tcp',
      connectTimeoutMs,
      ...withEndpoints(s.endpoints),
    });
  }
  return { routes, clusters, secrets: [] };
}

/**
 * WAN federation only (§6c): other datacenters' sidecars reach a local service with sidecars here
 * by its datacenter SNI, TLS passing through to those sidecars (both share the trust domain).
 */
function federatedPart(ctx: BuildContext, service: string): GatewayPart {
  const endpoints = sidecarEndpoints(ctx.catalog, service, 'default', 'default');
  const name = serviceSni(ctx.trustDomain, ctx.datacenter, { name: service });
  const chain = { serverNames: [name], cluster: name, statPrefix: 'mesh_gateway_local' };
  return {
    routes: [{ side: 'wan', chain }],
    clusters: [{ name, protocol: 'tcp', connectTimeoutMs, endpoints }],
    secrets: [],
  };
}

/** The local services with sidecars (default namespace and partition), sorted. */
/**
 * Whether a changed service now has sidecars but no federated part yet (its first sidecar came
 * back): the part is new, so the snapshot is assembled whole rather than patched.
 */
function gainsFederatedPart(
  ctx: BuildContext,
  held: PieceMemo<GatewayPart>,
  changes: ReadonlySet<string>,
): boolean {
  if (!ctx.federation) return false;
  for (const key of changes)
    if (!held.has(key) && ctx.catalog.sidecarsOf(key, 'default', 'default').length > 0) return true;
  return false;
}

function servicesWithSidecars(ctx: BuildContext): string[] {
  const services = new Set<string>();
  for (const p of ctx.catalog.instancesOfKind('connect-proxy')) {
    const dest = p.proxy?.destinationServiceName;
    if (dest && p.namespace === 'default' && p.partition === 'default') services.add(dest);
  }
  return [...services].sort();
}

/**
 * The LAN chains and clusters of one service imported from these peers (`previous`: the part it
 * replaces, whose equal values it keeps), as a piece: it depends on that service's imports from
 * each of them (`importDeps`).
 */
function importedPiece(
  ctx: BuildContext,
  peers: readonly string[],
  service: string,
  previous?: GatewayPart,
): Piece<GatewayPart> {
  const clusters = importedServiceClusters(ctx, peers, service);
  const routes = clusters.map((cluster) => ({
    side: 'lan' as const,
    chain: { serverNames: [cluster.name], cluster: cluster.name, statPrefix: 'mesh_gateway_local' },
  }));
  const value =
    clusters.length === 0
      ? noPart
      : {
          routes: reuse(previous?.routes, routes),
          clusters: clusters.map((c, i) => reuse(previous?.clusters[i], c)),
          secrets: previous?.secrets ?? [],
        };
  return { value, deps: importDeps(peers, service) };
}

/**
 * Whether a change names a service imported from one of `peers` that had no part (neither held nor
 * just dropped by the change), or does not say which service changed: either may add a part, so
 * the snapshot is assembled whole.
 */
function gainsImportedPart(
  ctx: BuildContext,
  held: PieceMemo<GatewayPart>,
  dropped: ReadonlyMap<string, unknown>,
  peers: readonly string[],
  changes: ReadonlySet<string>,
): boolean {
  for (const key of changes) {
    const named = parseImportedServiceKey(key);
    if (!named || !peers.includes(named[0])) continue;
    const [peer, service] = named;
    if (service === '*') return true;
    const hadPart = held.has(service) || dropped.has(service);
    if (!hadPart && peeredSidecars(ctx, peer, service).length > 0) return true;
  }
  return false;
}

/** The names of the services imported from `peers`, sorted, each once. */
function importedServiceNames(ctx: BuildContext, peers: readonly string[]): readonly string[] {
  if (peers.length === 1) return ctx.peering?.importedServiceNames(peers[0]!) ?? [];
  const names = new Set<string>();
  for (const peer of peers)
    for (const n of ctx.peering?.importedServiceNames(peer) ?? []) names.add(n);
  return [...names].sort();
}

/** Datacenters other than ours with gateways: registered here, or in a federation state. */
function remoteDatacenters(ctx: BuildContext): string[] {
  const dcs = new Set(ctx.federation?.remoteDatacenters() ?? []);
  for (const g of ctx.catalog.instancesOfKind('mesh-gateway'))
    if (g.datacenter !== ctx.datacenter) dcs.add(g.datacenter);
  dcs.delete(ctx.datacenter);
  return [...dcs].sort();
}

/** Consul's `Meta {"consul-wan-federation": "1"}` (the CLI's `--expose-servers`). */
export function exposesFederatedServers(gateway: ServiceInstance): boolean {
  return gateway.meta[wanFederationMetaKey] === '1';
}

/**
 * `server.<dc>.consul` and `<node>.server.<dc>.consul` (ours) to this server's federation port: a
 * gateway that exposes servers passes the federation TLS through to it, never terminating it.
 */
function localFederationServers(
  ctx: BuildContext,
  federation: FederationView,
): { chain: GatewayChainIR; cluster: EdsClusterIR } | undefined {
  const endpoints = toEndpoints(federation.localServerAddresses());
  if (endpoints.length === 0) return undefined;
  const name = federationServerName(ctx.datacenter);
  return {
    chain: {
      serverNames: [name, federationNodeServerName(federation.nodeName, ctx.datacenter)],
      cluster: name,
      statPrefix: 'mesh_gateway_local_server',
    },
    cluster: { name, protocol: 'tcp', connectTimeoutMs, ...withEndpoints(endpoints) },
  };
}

/**
 * A local service exported to peers that has sidecars here. Its gateway chains are one per
 * consuming peer whose bundle is known (before that nothing could verify that peer's callers),
 * `server_names` that peer's peered SNI (`<peer>` is our name for it), so adding, removing or
 * re-keying one peer changes only that peer's chain: Envoy drains and closes the connections of a
 * filter chain that changes, and another peer's must not be among them. A TCP chain passes through
 * to the `exported~` cluster of the local sidecars (mesh TLS ends there).
 */
interface ExportedService {
  readonly service: string;
  /** The consuming peers (sorted by name) and the SNI each one dials. */
  readonly peers: readonly { readonly peer: string; readonly sni: string }[];
  readonly cluster: EdsClusterIR;
}

/**
 * HTTP-family exports: TLS ends at the gateway (its leaf; for each consuming peer whose bundle is
 * known, a chain trusting that peer's trust domain through its SPIFFE secret), HTTP is routed with
 * x-forwarded-client-cert set, and new mTLS goes to the local sidecars (local SNI, the service's
 * SPIFFE ID). Undefined for TCP.
 */
function terminatedExport(
  e: ExportedService,
  leaf: Leaf,
  ctx: BuildContext,
):
  | { chains: GatewayChainIR[]; cluster: EdsClusterIR; secrets: TrustDomainsSecretIR[] }
  | undefined {
  const protocol = serviceProtocol(ctx.catalog, e.service);
  if (protocol === 'tcp') return undefined;
  const leafSecret = leafSecretName(leaf.spiffeId);
  const chains: GatewayChainIR[] = [];
  const secrets: TrustDomainsSecretIR[] = [];
  for (const { peer, sni } of e.peers) {
    const bundle = ctx.peering?.bundle(peer);
    if (!bundle) continue;
    const rootsSecret = peerInboundSecretName(peer);
    secrets.push({
      name: rootsSecret,
      trustDomains: [{ name: bundle.trustDomain, pems: [...bundle.pems] }],
    });
    chains.push({
      serverNames: [sni],
      cluster: e.cluster.name,
      statPrefix: `mesh_gateway_exported.${e.service}`,
      terminate: { leafSecret, rootsSecret, protocol },
    });
  }
  if (chains.length === 0) return undefined;
  const svc = { name: e.service };
  return {
    chains,
    secrets,
    cluster: {
      ...e.cluster,
      protocol,
      tls: {
        sni: serviceSni(ctx.trustDomain, ctx.datacenter, svc),
        leafSecret,
        rootsSecret: localRootsSecretName,
        spiffeIds: [serviceSpiffeId(ctx.trustDomain, ctx.datacenter, svc)],
      },
    },
  };
}

/** Each exported service (sorted) and its consuming peers whose bundle is known (sorted). */
function exportConsumers(ctx: BuildContext): ReadonlyMap<string, readonly string[]> {
  const consumers = new Map<string, string[]>();
  for (const peer of ctx.peering?.peerNames() ?? []) {
    if (!ctx.peering?.bundle(peer)) continue;
    for (const name of exportedNamesFor(ctx.catalog, peer))
      consumers.set(name, [...(consumers.get(name) ?? []), peer]);
  }
  const sorted = [...consumers.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  return new Map(sorted.map(([service, peers]) => [service, [...peers].sort()]));
}

function exportsWildcard(ctx: BuildContext): boolean {
  const entry = ctx.catalog.configEntry('exported-services', 'default');
  return entry?.services.some((s) => s.name === '*') ?? false;
}

/**
 * Whether a change may add or remove an exported service under a `*` export: a changed service
 * that has typical instances now and is not exported, or is exported and has none (the set is
 * that of `exportedNamesFor`, over the default partition).
 */
function exportsMayChange(
  ctx: BuildContext,
  consumers: ReadonlyMap<string, readonly string[]>,
  changes: Changes,
): boolean {
  if (changes === 'all') return true;
  for (const key of changes) {
    if (key.includes(':')) continue;
    const typical = ctx.catalog.instancesOf(key, 'default').some((i) => i.kind === 'typical');
    if (typical !== consumers.has(key)) return true;
  }
  return false;
}

function exportedService(
  service: string,
  peers: readonly string[],
  ctx: BuildContext,
): ExportedService | undefined {
  if (ctx.catalog.sidecarsOf(service, 'default', 'default').length === 0) return undefined;
  return {
    service,
    peers: peers.map((peer) => ({
      peer,
      sni: peeredServiceSni(ctx.trustDomain, peer, { name: service }),
    })),
    cluster: {
      name: exportedClusterName(ctx.trustDomain, ctx.datacenter, { name: service }),
      protocol: 'tcp',
      connectTimeoutMs,
      endpoints: sidecarEndpoints(ctx.catalog, service, 'default', 'default'),
    },
  };
}

/** Peers whose bundle is known: their imported services get LAN chains. */
function importingPeers(ctx: BuildContext): string[] {
  return (ctx.peering?.peerNames() ?? []).filter((peer) => ctx.peering?.bundle(peer));
}

/**
 * A service imported from peers whose bundle is known: one plain TCP cluster per peered SNI, named
 * by it, to the exporter's gateways; a LAN chain for that SNI routes a local-mode sidecar's
 * connection to it. An SNI two peers export under (two datacenters of one WAN federation, §6c)
 * gets neither: routing it to one of them would send the other's callers to the wrong service,
 * so local-mode sidecars dial those peers' gateways themselves (`peeredUpstreamEndpoints`). Only
 * one service's imports can share an SNI: the importer refuses an SNI that does not begin with
 * the service's name (src/peering/validate-import.ts).
 */
function importedServiceClusters(
  ctx: BuildContext,
  peers: readonly string[],
  service: string,
): EdsClusterIR[] {
  const out = new Map<string, EdsClusterIR>();
  const ambiguous = new Set<string>();
  for (const peer of peers) {
    const sidecars = peeredSidecars(ctx, peer, service);
    const sni = sidecars[0]?.peerMeta.sni[0];
    if (!sni) continue;
    if (out.has(sni)) {
      ambiguous.add(sni);
      continue;
    }
    const endpoints = peeredEndpoints(sidecars);
    out.set(sni, { name: sni, protocol: 'tcp', connectTimeoutMs, ...withEndpoints(endpoints) });
  }
  for (const sni of ambiguous) out.delete(sni);
  return [...out.values()];
}

interface PeeringServerRoute {
  readonly serverName: string;
  readonly statPrefix: string;
  readonly endpoints: EndpointIR[];
  /** `wan` for ours (peers dial it), `lan` for a peer's (our server dials it through us). */
  readonly side: GatewaySide;
}

/**
 * Peering control-plane traffic through the gateway (`mesh` entry
 * `Peering.PeerThroughMeshGateways`): `server.<dc>.peering.<td>` (ours) to this server's peering
 * port, so peering TLS passes through to it; and each peer we dialed, by its server name, to its
 * server addresses. TLS is never terminated.
 */
function peeringServers(ctx: BuildContext): PeeringServerRoute[] {
  if (!peerThroughMeshGateways(ctx.catalog)) return [];
  const out = new Map<string, PeeringServerRoute>();
  const own = peeringServerName(ctx.trustDomain, ctx.datacenter);
  const local = toEndpoints(ctx.localPeeringAddresses ?? []);
  if (local.length > 0)
    out.set(own, {
      serverName: own,
      statPrefix: 'mesh_gateway_peering_local',
      endpoints: local,
      side: 'wan',
    });
  for (const s of ctx.peering?.peerServers?.() ?? []) {
    const endpoints = toEndpoints(s.addresses);
    if (endpoints.length === 0 || out.has(s.serverName)) continue;
    out.set(s.serverName, {
      serverName: s.serverName,
      statPrefix: `mesh_gateway_peering.${s.peer}`,
      endpoints,
      side: 'lan',
    });
  }
  return [...out.values()];
}

function toEndpoints(addresses: readonly string[]): EndpointIR[] {
  const out: EndpointIR[] = [];
  for (const a of addresses) {
    const hp = parseHostPort(a);
    if (hp && hp.port > 0) out.push({ address: hp.host, port: hp.port, health: 'healthy' });
  }
  return out;
}
