import {
  instanceHealth,
  type Protocol,
  type ServiceInstance,
  type Upstream,
} from '../catalog/types.js';
import type { Leaf } from '../ca/types.js';
import { protocols } from '../catalog/config-entries.js';
import type { ImportedInstance } from '../peering/imported.js';
import {
  defaultNamespace,
  leafSecretName,
  peerBundleSecretName,
  peeredUpstreamClusterName,
  upstreamListenerName,
  upstreamRouteName,
} from '../mesh/names.js';
import type { BuildContext, PeerBundle } from './context.js';
import { importDeps } from './pieces.js';
import { connectTimeoutMs, withEndpoints } from './lookups.js';
import { gatewayEndpoints, sortEndpoints, upstreamGatewayMode } from '../catalog/lookups.js';
import type { EdsClusterIR, EndpointIR, RootsSecretIR, UpstreamIR } from './types.js';

/**
 * A peered service's synthetic sidecars: the exporter's gateways, each with the PeerMeta to dial
 * by.
 */
export type PeeredSidecar = ImportedInstance & {
  readonly peerMeta: NonNullable<ImportedInstance['peerMeta']>;
};

/** The non-critical synthetic sidecars of a service imported from `peer`, sorted by id. */
export function peeredSidecars(
  ctx: BuildContext,
  peer: string,
  service: string,
  namespace = defaultNamespace,
): PeeredSidecar[] {
  return (ctx.peering?.importedInstances(peer, service, namespace) ?? [])
    .filter(
      (i): i is PeeredSidecar =>
        i.kind === 'connect-proxy' && i.peerMeta !== undefined && i.peerMeta.sni.length > 0,
    )
    .filter((i) => instanceHealth(i) !== 'critical')
    .sort((a, b) => (a.id < b.id ? -1 : 1));
}

/** The peer gateways' WAN addresses behind the synthetic sidecars. */
export function peeredEndpoints(sidecars: readonly PeeredSidecar[]): EndpointIR[] {
  const seen = new Set<string>();
  const out: EndpointIR[] = [];
  for (const s of sidecars) {
    const key = `${s.address}:${s.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({
      address: s.address,
      port: s.port,
      health: instanceHealth(s) === 'warning' ? 'degraded' : 'healthy',
    });
  }
  return sortEndpoints(out);
}

export function protocolOf(raw: string): Protocol {
  return (protocols as readonly string[]).includes(raw) ? (raw as Protocol) : 'tcp';
}

export function peerRootsSecret(bundle: PeerBundle): RootsSecretIR {
  return { name: peerBundleSecretName(bundle.peer), pems: [...bundle.pems] };
}

/**
 * A sidecar upstream with `DestinationPeer` (docs/architecture.md §5 "Sidecar" and §6 "Replicated";
 * issue 5): SNI, SAN list and protocol come from the exporter's replicated PeerMeta, never
 * recomputed here; the peer's bundle is the trusted CA. Undefined until both the peer's instances
 * and its bundle are known, so the upstream is left out rather than half-rendered (Consul's
 * "received" flags).
 */
export function peeredUpstream(
  proxy: ServiceInstance,
  u: Upstream,
  leaf: Leaf,
  ctx: BuildContext,
): { upstream: UpstreamIR; bundle: PeerBundle } | undefined {
  const peer = u.destinationPeer;
  const bundle = peer ? ctx.peering?.bundle(peer) : undefined;
  if (!peer || !bundle) return undefined;
  const namespace = u.destinationNamespace || defaultNamespace;
  const sidecars = peeredSidecars(ctx, peer, u.destinationName, namespace);
  const meta = sidecars[0]?.peerMeta;
  if (!meta) return undefined;
  const target = { peer, service: u.destinationName, namespace };
  const endpoints = peeredUpstreamEndpoints(proxy, u, target, sidecars, ctx);
  const protocol = protocolOf(meta.protocol);
  const bindAddress = u.localBindAddress || '127.0.0.1';
  const cluster: EdsClusterIR = {
    name: peeredUpstreamClusterName(bundle.trustDomain, peer, {
      name: u.destinationName,
      namespace,
    }),
    protocol,
    connectTimeoutMs,
    tls: {
      sni: meta.sni[0]!,
      leafSecret: leafSecretName(leaf.spiffeId),
      rootsSecret: peerBundleSecretName(peer),
      spiffeIds: [...meta.spiffeId],
    },
    ...withEndpoints(endpoints),
  };
  const upstream: UpstreamIR = {
    listenerName: upstreamListenerName(u.destinationName, bindAddress, u.localBindPort, peer),
    bindAddress,
    bindPort: u.localBindPort,
    service: u.destinationName,
    protocol,
    routeName: protocol === 'tcp' ? undefined : upstreamRouteName(u.destinationName, peer),
    cluster,
  };
  return { upstream, bundle };
}

/**
 * Mode `remote` (default): the exporter's gateways (WAN). Mode `local`: our own gateways (LAN),
 * unless another peer exports a service under the same SNI: our gateway routes by SNI alone and
 * could not tell the two apart, so the sidecar dials this peer's gateways itself.
 */
export function peeredUpstreamEndpoints(
  proxy: ServiceInstance,
  u: Upstream,
  target: { readonly peer: string; readonly service: string; readonly namespace: string },
  sidecars: readonly PeeredSidecar[],
  ctx: BuildContext,
): EndpointIR[] {
  if (upstreamGatewayMode(ctx.catalog, proxy, u) !== 'local') return peeredEndpoints(sidecars);
  const service = { name: target.service, namespace: target.namespace };
  const snis = sidecars.flatMap((s) => s.peerMeta.sni);
  if (sniClaimedByAnotherPeer(ctx, target.peer, service, snis)) return peeredEndpoints(sidecars);
  const local = ctx.catalog
    .instancesOfKind('mesh-gateway')
    .filter((g) => !g.datacenter || g.datacenter === ctx.datacenter);
  return gatewayEndpoints(local, 'lan');
}

/**
 * Whether a peer other than `peer` exports a service under one of `snis`. A peered SNI names the
 * exporter's trust domain and its name for us (`<svc>.<ns>.<ap>.<our name>.external.<td>`), so
 * two peers yield the same one only when they share a trust domain and call us alike: two
 * datacenters of one WAN federation, whose `exported-services` entry is global
 * (docs/architecture.md §6c "Federation and peering together").
 */
export function sniClaimedByAnotherPeer(
  ctx: BuildContext,
  peer: string,
  service: { readonly name: string; readonly namespace: string },
  snis: readonly string[],
): boolean {
  const wanted = new Set(snis);
  return sameTrustDomainPeers(ctx, peer).some((other) =>
    peeredSidecars(ctx, other, service.name, service.namespace).some((s) =>
      s.peerMeta.sni.some((sni) => wanted.has(sni)),
    ),
  );
}

/** The other live peers whose bundle names the same trust domain as `peer`'s. */
function sameTrustDomainPeers(ctx: BuildContext, peer: string): string[] {
  const td = ctx.peering?.bundle(peer)?.trustDomain;
  if (!td) return [];
  return (ctx.peering?.peerNames() ?? []).filter(
    (p) => p !== peer && ctx.peering?.bundle(p)?.trustDomain === td,
  );
}

/**
 * What an upstream to `service` of `peer` is rebuilt on: that service's imports from that peer,
 * and from every peer sharing its trust domain (whose SNIs may collide with it,
 * `sniClaimedByAnotherPeer`), or a change to those peers' imports that names no service.
 */
export function peerDeps(ctx: BuildContext, peer: string, service: string): string[] {
  return importDeps([peer, ...sameTrustDomainPeers(ctx, peer)], service);
}
