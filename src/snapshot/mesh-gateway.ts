import type { GatewayBindAddress, ServiceInstance } from '../catalog/types.js';
import type { Leaf } from '../ca/types.js';
import {
  datacenterSni,
  datacenterWildcardSni,
  exportedClusterName,
  leafSecretName,
  localRootsSecretName,
  meshGatewayListenerName,
  peeredServiceSni,
  peerInboundSecretName,
  peeringServerName,
  serviceSni,
  serviceSpiffeId,
} from '../mesh/names.js';
import { parseHostPort } from '../config/host-port.js';
import { exportedNamesFor } from '../peering/exports.js';
import { peerThroughMeshGateways } from '../peering/through-gateways.js';
import type { BuildContext, Built } from './context.js';
import { connectTimeoutMs, sidecarEndpoints, withEndpoints } from './lookups.js';
import { gatewayEndpoints, serviceProtocol } from '../catalog/lookups.js';
import { peeredEndpoints, peeredSidecars } from './peered.js';
import type {
  EdsClusterIR,
  EndpointIR,
  GatewayChainIR,
  MeshGatewaySnapshot,
  TrustDomainsSecretIR,
} from './types.js';

/**
 * A mesh gateway's snapshot (docs/architecture.md §5 "Mesh gateway"): TLS-inspecting listeners that
 * pass mesh TLS through by SNI; chains for services exported to peers, then for remote datacenters,
 * then the `sni_cluster` catch-all for local services and services imported from peers (mode
 * `local`).
 */
export function buildMeshGatewaySnapshot(
  gateway: ServiceInstance,
  ctx: BuildContext,
  leaf?: Leaf,
): Built<MeshGatewaySnapshot> {
  const chains: GatewayChainIR[] = [];
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
    chains.push(...own);
    clusters.push(cluster);
  }
  for (const [dc, gateways] of remoteGatewaysByDatacenter(ctx)) {
    const name = datacenterSni(ctx.trustDomain, dc);
    chains.push({
      serverNames: [datacenterWildcardSni(ctx.trustDomain, dc)],
      cluster: name,
      statPrefix: `mesh_gateway_remote.${dc}`,
    });
    const endpoints = gatewayEndpoints(gateways, 'wan');
    clusters.push({ name, protocol: 'tcp', connectTimeoutMs, ...withEndpoints(endpoints) });
  }
  for (const s of peeringServers(ctx)) {
    chains.push({ serverNames: [s.serverName], cluster: s.serverName, statPrefix: s.statPrefix });
    clusters.push({
      name: s.serverName,
      protocol: 'tcp',
      connectTimeoutMs,
      ...withEndpoints(s.endpoints),
    });
  }
  chains.push({ serverNames: [], statPrefix: 'mesh_gateway_local' });
  clusters.push(...localServiceClusters(ctx), ...importedServiceClusters(ctx));
  const snapshot: MeshGatewaySnapshot = {
    kind: 'mesh-gateway',
    proxyId: gateway.id,
    listeners: gatewayBinds(gateway).map((b) => ({
      name: meshGatewayListenerName(b.address, b.port, b.name),
      address: b.address,
      port: b.port,
      chains,
    })),
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

/**
 * Where the gateway's listeners bind, as Consul does it (`listenersFromSnapshotGateway`): `default`
 * (the LAN address, else the service address) unless `no_default_bind`; `lan` and `wan` with
 * `bind_tagged_addresses`; each `bind_addresses` entry by its name. Sorted by name, and where two
 * share an address and port the first one is kept: Envoy rejects a second listener on an address.
 */
function gatewayBinds(gateway: ServiceInstance): GatewayBindAddress[] {
  const cfg = gateway.gatewayConfig;
  const all: GatewayBindAddress[] = [];
  if (!cfg?.noDefaultBind) {
    const lan = gateway.taggedAddresses.lan;
    all.push({
      name: 'default',
      address: lan?.address || gateway.address || '0.0.0.0',
      port: lan?.port || gateway.port,
    });
  }
  if (cfg?.bindTaggedAddresses) {
    for (const name of ['lan', 'wan'] as const) {
      const tagged = gateway.taggedAddresses[name];
      if (tagged) all.push({ name, address: tagged.address, port: tagged.port });
    }
  }
  all.push(...(cfg?.bindAddresses ?? []));
  const seen = new Set<string>();
  return all
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .filter((b) => {
      const key = `${b.address}:${b.port}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
}

function remoteGatewaysByDatacenter(ctx: BuildContext): [string, ServiceInstance[]][] {
  const byDc = new Map<string, ServiceInstance[]>();
  for (const g of ctx.catalog.instancesOfKind('mesh-gateway')) {
    if (g.datacenter === ctx.datacenter) continue;
    byDc.set(g.datacenter, [...(byDc.get(g.datacenter) ?? []), g]);
  }
  return [...byDc.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
}

/**
 * One plain TCP cluster per local service with sidecars, named by its SNI (what sni_cluster routes
 * by).
 */
function localServiceClusters(ctx: BuildContext): EdsClusterIR[] {
  const services = new Map<string, { name: string; namespace: string; partition: string }>();
  for (const p of ctx.catalog.instancesOfKind('connect-proxy')) {
    if (p.datacenter !== ctx.datacenter || !p.proxy) continue;
    const key = `${p.proxy.destinationServiceName}/${p.namespace}/${p.partition}`;
    if (!services.has(key))
      services.set(key, {
        name: p.proxy.destinationServiceName,
        namespace: p.namespace,
        partition: p.partition,
      });
  }
  return [...services.values()].map((svc) => ({
    name: serviceSni(ctx.trustDomain, ctx.datacenter, svc),
    protocol: 'tcp' as const,
    connectTimeoutMs,
    endpoints: sidecarEndpoints(ctx.catalog, svc.name, svc.namespace, svc.partition),
  }));
}

/**
 * A local service exported to peers that has sidecars here. Its gateway chains are one per
 * consuming peer, `server_names` that peer's peered SNI (`<peer>` is our name for it), so adding,
 * removing or re-keying one peer changes only that peer's chain: Envoy drains and closes the
 * connections of a filter chain that changes, and another peer's must not be among them. A TCP
 * chain passes through to the `exported~` cluster of the local sidecars (mesh TLS ends there).
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
 * SPIFFE ID). Undefined for TCP, or while no consuming peer's bundle is known.
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
 * Services imported from peers whose bundle is known: one plain TCP cluster per peered SNI (what
 * `sni_cluster` routes a local-mode sidecar's connection by) to the exporter's gateways.
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

/**
 * Peering control-plane traffic through the gateway (`mesh` entry
 * `Peering.PeerThroughMeshGateways`): `server.<dc>.peering.<td>` (ours) to this server's peering
 * port, so peering TLS passes through to it; and each peer we dialed, by its server name, to its
 * server addresses. TLS is never terminated.
 */
function peeringServers(
  ctx: BuildContext,
): { serverName: string; statPrefix: string; endpoints: EndpointIR[] }[] {
  if (!peerThroughMeshGateways(ctx.catalog)) return [];
  const out = new Map<
    string,
    { serverName: string; statPrefix: string; endpoints: EndpointIR[] }
  >();
  const own = peeringServerName(ctx.trustDomain, ctx.datacenter);
  const local = toEndpoints(ctx.localPeeringAddresses ?? []);
  if (local.length > 0)
    out.set(own, { serverName: own, statPrefix: 'mesh_gateway_peering_local', endpoints: local });
  for (const s of ctx.peering?.peerServers?.() ?? []) {
    const endpoints = toEndpoints(s.addresses);
    if (endpoints.length === 0 || out.has(s.serverName)) continue;
    out.set(s.serverName, {
      serverName: s.serverName,
      statPrefix: `mesh_gateway_peering.${s.peer}`,
      endpoints,
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
