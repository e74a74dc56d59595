import type { ServiceInstance, Upstream } from '../catalog/types.js';
import type { Leaf } from '../ca/types.js';
import {
  defaultNamespace,
  defaultPartition,
  leafSecretName,
  localAppClusterName,
  localRootsSecretName,
  publicListenerName,
  serviceSni,
  serviceSpiffeId,
  upstreamListenerName,
  upstreamRouteName,
} from '../mesh/names.js';
import type { BuildContext, Built } from './context.js';
import { rbacForDestination } from './intentions.js';
import { gatewayEndpoints, meshGatewayMode, serviceProtocol, sidecarEndpoints } from './lookups.js';
import type { EndpointIR, SidecarSnapshot, UpstreamIR } from './types.js';

const connectTimeoutMs = 5_000;

/** The destination service's SPIFFE ID: the identity a sidecar's leaf is issued for. */
export function sidecarSpiffeId(proxy: ServiceInstance, ctx: Pick<BuildContext, 'trustDomain' | 'datacenter'>): string {
  return serviceSpiffeId(ctx.trustDomain, ctx.datacenter, {
    name: proxy.proxy?.destinationServiceName ?? proxy.name,
    namespace: proxy.namespace,
    partition: proxy.partition,
  });
}

/** A connect-proxy's snapshot (DESIGN.md §5 "Sidecar"). Peered upstreams come with peering. */
export function buildSidecarSnapshot(proxy: ServiceInstance, leaf: Leaf, ctx: BuildContext): Built<SidecarSnapshot> {
  const destination = proxy.proxy?.destinationServiceName ?? proxy.name;
  const address = proxy.address || '0.0.0.0';
  const deps = new Set<string>([destination]);
  const upstreams: UpstreamIR[] = [];
  for (const u of proxy.proxy?.upstreams ?? []) {
    if (u.destinationPeer) continue; // built by the peering-aware builder (issue: peered traffic)
    deps.add(u.destinationName);
    upstreams.push(localUpstream(proxy, u, leaf, ctx));
  }
  const snapshot: SidecarSnapshot = {
    kind: 'connect-proxy',
    proxyId: proxy.id,
    service: destination,
    spiffeId: leaf.spiffeId,
    leaf: { name: leafSecretName(leaf.spiffeId), certPem: leaf.certPem, keyPem: leaf.keyPem },
    roots: [{ name: localRootsSecretName, pems: ctx.roots.roots.map((r) => r.certPem) }],
    publicListener: {
      name: publicListenerName(address, proxy.port),
      address,
      port: proxy.port,
      protocol: serviceProtocol(ctx.catalog, destination),
      leafSecret: leafSecretName(leaf.spiffeId),
      rootsSecret: localRootsSecretName,
      rbac: rbacForDestination(ctx.catalog, destination, ctx.trustDomain, ctx.peerTrustDomain),
      localApp: {
        clusterName: localAppClusterName,
        address: proxy.proxy?.localServiceAddress || '127.0.0.1',
        port: proxy.proxy?.localServicePort || 0,
      },
    },
    upstreams: upstreams.sort((a, b) => (a.listenerName < b.listenerName ? -1 : 1)),
  };
  return { snapshot, deps };
}

function localUpstream(proxy: ServiceInstance, u: Upstream, leaf: Leaf, ctx: BuildContext): UpstreamIR {
  const dc = u.datacenter || ctx.datacenter;
  const svc = { name: u.destinationName, namespace: u.destinationNamespace || defaultNamespace, partition: u.destinationPartition || defaultPartition };
  const protocol = serviceProtocol(ctx.catalog, u.destinationName);
  const sni = serviceSni(ctx.trustDomain, dc, svc);
  const bindAddress = u.localBindAddress || '127.0.0.1';
  return {
    listenerName: upstreamListenerName(u.destinationName, bindAddress, u.localBindPort),
    bindAddress,
    bindPort: u.localBindPort,
    service: u.destinationName,
    protocol,
    routeName: protocol === 'tcp' ? undefined : upstreamRouteName(u.destinationName),
    cluster: {
      name: sni,
      protocol,
      connectTimeoutMs,
      tls: {
        sni,
        leafSecret: leafSecretName(leaf.spiffeId),
        rootsSecret: localRootsSecretName,
        spiffeIds: [serviceSpiffeId(ctx.trustDomain, dc, svc)],
      },
      endpoints: upstreamEndpoints(proxy, u, dc, svc, ctx),
    },
  };
}

/**
 * Local datacenter: the destination's sidecars. Another datacenter: through mesh gateways, the
 * remote ones' WAN addresses (mode remote, the default) or our own (mode local).
 */
function upstreamEndpoints(
  proxy: ServiceInstance,
  u: Upstream,
  dc: string,
  svc: { name: string; namespace: string; partition: string },
  ctx: BuildContext,
): EndpointIR[] {
  if (dc === ctx.datacenter) return sidecarEndpoints(ctx.catalog, svc.name, svc.namespace, svc.partition);
  const sd = ctx.catalog.configEntry('service-defaults', svc.name);
  const pd = ctx.catalog.configEntry('proxy-defaults', 'global');
  const mode = meshGatewayMode([u.meshGateway.mode, proxy.proxy?.meshGateway.mode, sd?.meshGateway.mode, pd?.meshGateway.mode], 'remote');
  const gateways = ctx.catalog.instancesOfKind('mesh-gateway');
  if (mode === 'local') return gatewayEndpoints(gateways.filter((g) => g.datacenter === ctx.datacenter), 'lan');
  return gatewayEndpoints(gateways.filter((g) => g.datacenter === dc), 'wan');
}
