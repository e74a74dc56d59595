import type { ServiceInstance } from '../catalog/types.js';
import { datacenterSni, datacenterWildcardSni, meshGatewayListenerName, serviceSni } from '../mesh/names.js';
import type { BuildContext, Built } from './context.js';
import { gatewayEndpoints, sidecarEndpoints } from './lookups.js';
import type { EdsClusterIR, GatewayChainIR, MeshGatewaySnapshot } from './types.js';

const connectTimeoutMs = 5_000;

/**
 * A mesh gateway's snapshot (DESIGN.md §5): a TLS-inspecting listener that passes mesh TLS through
 * by SNI; chains for remote datacenters, then the `sni_cluster` catch-all for local services.
 */
export function buildMeshGatewaySnapshot(gateway: ServiceInstance, ctx: BuildContext): Built<MeshGatewaySnapshot> {
  const lan = gateway.taggedAddresses.lan;
  const address = lan?.address || gateway.address || '0.0.0.0';
  const port = lan?.port || gateway.port;
  const chains: GatewayChainIR[] = [];
  const clusters: EdsClusterIR[] = [];
  for (const [dc, gateways] of remoteGatewaysByDatacenter(ctx)) {
    const name = datacenterSni(ctx.trustDomain, dc);
    chains.push({ serverNames: [datacenterWildcardSni(ctx.trustDomain, dc)], cluster: name, statPrefix: `mesh_gateway_remote.${dc}` });
    clusters.push({ name, protocol: 'tcp', connectTimeoutMs, endpoints: gatewayEndpoints(gateways, 'wan') });
  }
  chains.push({ serverNames: [], statPrefix: 'mesh_gateway_local' });
  clusters.push(...localServiceClusters(ctx));
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
