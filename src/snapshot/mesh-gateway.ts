import type { ServiceInstance } from '../catalog/types.js';
import { datacenterSni, datacenterWildcardSni, exportedClusterName, meshGatewayListenerName, peeredServiceSni, serviceSni } from '../mesh/names.js';
import { exportedNamesFor } from '../peering/exports.js';
import type { BuildContext, Built } from './context.js';
import { gatewayEndpoints, sidecarEndpoints } from './lookups.js';
import { needsDns, peeredEndpoints, peeredSidecars } from './peered.js';
import type { EdsClusterIR, GatewayChainIR, MeshGatewaySnapshot } from './types.js';

const connectTimeoutMs = 5_000;

/**
 * A mesh gateway's snapshot (DESIGN.md §5): a TLS-inspecting listener that passes mesh TLS through
 * by SNI; chains for services exported to peers, then for remote datacenters, then the
 * `sni_cluster` catch-all for local services and services imported from peers (mode `local`).
 */
export function buildMeshGatewaySnapshot(gateway: ServiceInstance, ctx: BuildContext): Built<MeshGatewaySnapshot> {
  const lan = gateway.taggedAddresses.lan;
  const address = lan?.address || gateway.address || '0.0.0.0';
  const port = lan?.port || gateway.port;
  const chains: GatewayChainIR[] = [];
  const clusters: EdsClusterIR[] = [];
  for (const e of exportedServices(ctx)) {
    chains.push({ serverNames: e.serverNames, cluster: e.cluster.name, statPrefix: `mesh_gateway_exported.${e.service}` });
    clusters.push(e.cluster);
  }
  for (const [dc, gateways] of remoteGatewaysByDatacenter(ctx)) {
    const name = datacenterSni(ctx.trustDomain, dc);
    chains.push({ serverNames: [datacenterWildcardSni(ctx.trustDomain, dc)], cluster: name, statPrefix: `mesh_gateway_remote.${dc}` });
    const endpoints = gatewayEndpoints(gateways, 'wan');
    clusters.push({ name, protocol: 'tcp', connectTimeoutMs, endpoints, ...(needsDns(endpoints) ? { dns: true } : {}) });
  }
  chains.push({ serverNames: [], statPrefix: 'mesh_gateway_local' });
  clusters.push(...localServiceClusters(ctx), ...importedServiceClusters(ctx));
  const snapshot: MeshGatewaySnapshot = {
    kind: 'mesh-gateway',
    proxyId: gateway.id,
    listener: { name: meshGatewayListenerName(address, port), address, port, chains },
    clusters: clusters.sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
  return { snapshot, deps: new Set(['*']) };
}

function remoteGatewaysByDatacenter(ctx: BuildContext): [string, ServiceInstance[]][] {
  const byDc = new Map<string, ServiceInstance[]>();
  for (const g of ctx.catalog.instancesOfKind('mesh-gateway')) {
    if (g.datacenter === ctx.datacenter) continue;
    byDc.set(g.datacenter, [...(byDc.get(g.datacenter) ?? []), g]);
  }
  return [...byDc.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
}

/** One plain TCP cluster per local service with sidecars, named by its SNI (what sni_cluster routes by). */
function localServiceClusters(ctx: BuildContext): EdsClusterIR[] {
  const services = new Map<string, { name: string; namespace: string; partition: string }>();
  for (const p of ctx.catalog.instancesOfKind('connect-proxy')) {
    if (p.datacenter !== ctx.datacenter || !p.proxy) continue;
    const key = `${p.proxy.destinationServiceName}/${p.namespace}/${p.partition}`;
    if (!services.has(key)) services.set(key, { name: p.proxy.destinationServiceName, namespace: p.namespace, partition: p.partition });
  }
  return [...services.values()].map((svc) => ({
    name: serviceSni(ctx.trustDomain, ctx.datacenter, svc),
    protocol: 'tcp' as const,
    connectTimeoutMs,
    endpoints: sidecarEndpoints(ctx.catalog, svc.name, svc.namespace, svc.partition),
  }));
}

/**
 * Local services exported to peers that have sidecars here: one chain per service whose
 * `server_names` are the peered SNI per consuming peer (`<peer>` is our name for it), passing TCP
 * through to the `exported~` cluster of the local sidecars (mesh TLS ends at the sidecar).
 */
function exportedServices(ctx: BuildContext): { service: string; serverNames: string[]; cluster: EdsClusterIR }[] {
  const consumers = new Map<string, string[]>();
  for (const peer of ctx.peering?.peerNames() ?? []) {
    for (const name of exportedNamesFor(ctx.catalog, peer)) consumers.set(name, [...(consumers.get(name) ?? []), peer]);
  }
  const out: { service: string; serverNames: string[]; cluster: EdsClusterIR }[] = [];
  for (const [service, peers] of [...consumers.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (ctx.catalog.sidecarsOf(service, 'default', 'default').length === 0) continue;
    out.push({
      service,
      serverNames: peers.map((p) => peeredServiceSni(ctx.trustDomain, p, { name: service })).sort(),
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
      out.set(sni, { name: sni, protocol: 'tcp', connectTimeoutMs, endpoints, ...(needsDns(endpoints) ? { dns: true } : {}) });
    }
  }
  return [...out.values()];
}
