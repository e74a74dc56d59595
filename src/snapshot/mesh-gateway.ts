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
  const routes: SidedChain[] = [];
  const clusters: EdsClusterIR[] = [];
  const peerInbound = new Map<string, TrustDomainsSecretIR>();
  for (const e of exportedServices(ctx)) {
    const terminated = leaf ? terminatedExport(e, leaf, ctx) : undefined;
    if (terminated) for (const secret of terminated.secrets) peerInbound.set(secret.name, secret);
    const statPrefix = `mesh_gateway_exported.${e.service}`;
    const { chains: own, cluster } = terminated ?? {
      chains: e.peers.map((p) => ({ serverNames: [p.sni], cluster: e.cluster.name, statPrefix })),
      cluster: e.cluster,
    };
    routes.push(...own.map((chain) => ({ side: 'wan' as const, chain })));
    clusters.push(cluster);
  }
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
  // WAN federation only: other datacenters' sidecars reach a local service by its datacenter SNI
  // (§6c). Without federation no chain reaches a local service but through its exports.
  if (ctx.federation)
    for (const cluster of federatedServiceClusters(ctx)) {
      const chain = {
        serverNames: [cluster.name],
        cluster: cluster.name,
        statPrefix: 'mesh_gateway_local',
      };
      routes.push({ side: 'wan', chain });
      clusters.push(cluster);
    }
  for (const cluster of importedServiceClusters(ctx)) {
    const chain = {
      serverNames: [cluster.name],
      cluster: cluster.name,
      statPrefix: 'mesh_gateway_local',
    };
    routes.push({ side: 'lan', chain });
    clusters.push(cluster);
  }
  const snapshot: MeshGatewaySnapshot = {
    kind: 'mesh-gateway',
    proxyId: gateway.id,
    listeners: gatewayListeners(gateway, routes),
    clusters: clusters.sort((a, b) => (a.name < b.name ? -1 : 1)),
    ...(peerInbound.size > 0 && leaf
      ? {
          leaf: { name: leafSecretName(leaf.spiffeId), certPem: leaf.certPem, keyPem: leaf.keyPem },
          roots: [{ name: localRootsSecretName, pems: ctx.roots.roots.map((r) => r.certPem) }],
          peerInbound: [...peerInbound.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
        }
      : {}),
  };
  return { snapshot, deps: new Set(['*']) };
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
 * Each local service with sidecars, by its datacenter SNI, to those sidecars (TLS passes through:
 * the caller's sidecar and ours share the trust domain in federation).
 */
function federatedServiceClusters(ctx: BuildContext): EdsClusterIR[] {
  const services = new Set<string>();
  for (const p of ctx.catalog.instancesOfKind('connect-proxy')) {
    const dest = p.proxy?.destinationServiceName;
    if (dest && p.namespace === 'default' && p.partition === 'default') services.add(dest);
  }
  return [...services].sort().map((service) => ({
    name: serviceSni(ctx.trustDomain, ctx.datacenter, { name: service }),
    protocol: 'tcp' as const,
    connectTimeoutMs,
    endpoints: sidecarEndpoints(ctx.catalog, service, 'default', 'default'),
  }));
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

function exportedServices(ctx: BuildContext): ExportedService[] {
  const consumers = new Map<string, string[]>();
  for (const peer of ctx.peering?.peerNames() ?? []) {
    if (!ctx.peering?.bundle(peer)) continue;
    for (const name of exportedNamesFor(ctx.catalog, peer))
      consumers.set(name, [...(consumers.get(name) ?? []), peer]);
  }
  const out: ExportedService[] = [];
  for (const [service, peers] of [...consumers.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (ctx.catalog.sidecarsOf(service, 'default', 'default').length === 0) continue;
    out.push({
      service,
      peers: [...peers]
        .sort()
        .map((peer) => ({ peer, sni: peeredServiceSni(ctx.trustDomain, peer, { name: service }) })),
      cluster: {
        name: exportedClusterName(ctx.trustDomain, ctx.datacenter, { name: service }),
        protocol: 'tcp',
        connectTimeoutMs,
        endpoints: sidecarEndpoints(ctx.catalog, service, 'default', 'default'),
      },
    });
  }
  return out;
}

/**
 * Services imported from peers whose bundle is known: one plain TCP cluster per peered SNI, named
 * by it, to the exporter's gateways; a LAN chain for that SNI routes a local-mode sidecar's
 * connection to it.
 */
function importedServiceClusters(ctx: BuildContext): EdsClusterIR[] {
  const out = new Map<string, EdsClusterIR>();
  for (const peer of ctx.peering?.peerNames() ?? []) {
    if (!ctx.peering?.bundle(peer)) continue;
    for (const service of ctx.peering.importedServiceNames(peer)) {
      const sidecars = peeredSidecars(ctx, peer, service);
      const sni = sidecars[0]?.peerMeta.sni[0];
      if (!sni || out.has(sni)) continue;
      const endpoints = peeredEndpoints(sidecars);
      out.set(sni, { name: sni, protocol: 'tcp', connectTimeoutMs, ...withEndpoints(endpoints) });
    }
  }
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
