import type { ServiceInstance, Upstream } from '../catalog/types.js';
import type { Leaf } from '../ca/types.js';
import {
  defaultNamespace,
  defaultPartition,
  inboundRootsSecretName,
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
import { connectTimeoutMs, upstreamEndpoints, withEndpoints } from './lookups.js';
import { serviceProtocol } from '../catalog/lookups.js';
import { peeredUpstream, peerRootsSecret } from './peered.js';
import { chainDeps, chainUpstream } from './chain-upstream.js';
import { compileChain } from '../discovery-chain/compile.js';
import { type ChainLookups, compileRoutes } from '../discovery-chain/routes.js';
import { samenessLookup } from '../discovery-chain/sameness.js';
import { routedUpstream } from './routed-upstream.js';
import { exportedNamesFor } from '../peering/exports.js';
import type {
  RootsSecretIR,
  SidecarSnapshot,
  TrustDomainIR,
  TrustDomainsSecretIR,
  UpstreamIR,
} from './types.js';

/** The destination service's SPIFFE ID: the identity a sidecar's leaf is issued for. */
export function sidecarSpiffeId(
  proxy: ServiceInstance,
  ctx: Pick<BuildContext, 'trustDomain' | 'datacenter'>,
): string {
  return serviceSpiffeId(ctx.trustDomain, ctx.datacenter, {
    name: proxy.proxy?.destinationServiceName ?? proxy.name,
    namespace: proxy.namespace,
    partition: proxy.partition,
  });
}

/**
 * A connect-proxy's snapshot (docs/architecture.md §5 "Sidecar"), with peered upstreams and inbound
 * peer trust.
 */
export function buildSidecarSnapshot(
  proxy: ServiceInstance,
  leaf: Leaf,
  ctx: BuildContext,
): Built<SidecarSnapshot> {
  const destination = proxy.proxy?.destinationServiceName ?? proxy.name;
  const address = proxy.address || '0.0.0.0';
  const deps = new Set<string>([destination]);
  const upstreams: UpstreamIR[] = [];
  const peerRoots = new Map<string, RootsSecretIR>();
  for (const u of proxy.proxy?.upstreams ?? []) {
    if (u.destinationPeer) {
      deps.add(`peer:${u.destinationPeer}`);
      const peered = peeredUpstream(proxy, u, leaf, ctx);
      if (!peered) continue;
      upstreams.push(peered.upstream);
      peerRoots.set(peered.bundle.peer, peerRootsSecret(peered.bundle));
      continue;
    }
    deps.add(u.destinationName);
    const req = { service: u.destinationName, datacenter: u.datacenter || ctx.datacenter };
    const lookups = chainLookups(ctx, deps);
    // Routers and splitters need HTTP; on a service that fell back to tcp only the resolver applies.
    const http = serviceProtocol(ctx.catalog, u.destinationName) !== 'tcp';
    const routed = http ? compileRoutes(req, lookups) : undefined;
    const chain = compileChain(req, lookups.resolver, lookups.groups);
    if (!routed && chain.isDefault) {
      upstreams.push(localUpstream(proxy, u, leaf, ctx));
      continue;
    }
    const built = routed
      ? routedUpstream(proxy, u, routed, leaf, ctx)
      : chainUpstream(proxy, u, chain, leaf, ctx);
    for (const dep of built?.deps ?? chainDeps(chain)) deps.add(dep);
    if (!built) continue;
    upstreams.push(built.upstream);
    for (const bundle of built.bundles) peerRoots.set(bundle.peer, peerRootsSecret(bundle));
  }
  const localRoots: RootsSecretIR = {
    name: localRootsSecretName,
    pems: ctx.roots.roots.map((r) => r.certPem),
  };
  const trustDomains = inboundTrustDomains(destination, localRoots, ctx);
  const inbound: TrustDomainsSecretIR | undefined = trustDomains && {
    name: inboundRootsSecretName,
    trustDomains,
  };
  const protocol = serviceProtocol(ctx.catalog, destination);
  const snapshot: SidecarSnapshot = {
    kind: 'connect-proxy',
    proxyId: proxy.id,
    service: destination,
    spiffeId: leaf.spiffeId,
    leaf: { name: leafSecretName(leaf.spiffeId), certPem: leaf.certPem, keyPem: leaf.keyPem },
    roots: [localRoots, ...[...peerRoots.values()].sort((a, b) => (a.name < b.name ? -1 : 1))],
    ...(inbound ? { inbound } : {}),
    publicListener: {
      name: publicListenerName(address, proxy.port),
      address,
      port: proxy.port,
      protocol,
      leafSecret: leafSecretName(leaf.spiffeId),
      rootsSecret: inbound?.name ?? localRootsSecretName,
      rbac: rbacForDestination(
        ctx.catalog,
        destination,
        ctx.trustDomain,
        ctx.peerTrustDomain,
        protocol !== 'tcp',
      ),
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

/**
 * The chain's entries, read from the catalog. Each router and splitter looked up (there or not)
 * becomes a dependency `config:<kind>/<name>`, so a change to one rebuilds exactly the proxies
 * whose upstreams read it (resolver changes rebuild every proxy).
 */
function chainLookups(ctx: BuildContext, deps: Set<string>): ChainLookups {
  return {
    resolver: (name) => ctx.catalog.configEntry('service-resolver', name),
    splitter: (name) => {
      deps.add(configDep('service-splitter', name));
      return ctx.catalog.configEntry('service-splitter', name);
    },
    router: (name) => {
      deps.add(configDep('service-router', name));
      return ctx.catalog.configEntry('service-router', name);
    },
    groups: samenessLookup(ctx.catalog),
  };
}

/** The dependency on a config entry (service names never hold ':' or '/'). */
export function configDep(kind: string, name: string): string {
  return `config:${kind}/${name}`;
}

function localUpstream(
  proxy: ServiceInstance,
  u: Upstream,
  leaf: Leaf,
  ctx: BuildContext,
): UpstreamIR {
  const dc = u.datacenter || ctx.datacenter;
  const svc = {
    name: u.destinationName,
    namespace: u.destinationNamespace || defaultNamespace,
    partition: u.destinationPartition || defaultPartition,
  };
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
      ...withEndpoints(upstreamEndpoints(proxy, u, dc, svc, ctx)),
    },
  };
}

/**
 * The trust domains the public listener accepts when its service is exported to peers: ours and
 * each consuming peer's whose bundle is known (docs/architecture.md §5), for its `inbound` SPIFFE
 * secret. Undefined when no peer is involved, so the listener keeps validating with the local roots
 * secret.
 */
function inboundTrustDomains(
  service: string,
  localRoots: RootsSecretIR,
  ctx: BuildContext,
): TrustDomainIR[] | undefined {
  const out: TrustDomainIR[] = [];
  for (const peer of ctx.peering?.peerNames() ?? []) {
    const bundle = ctx.peering?.bundle(peer);
    if (!bundle || !exportedNamesFor(ctx.catalog, peer).includes(service)) continue;
    if (bundle.trustDomain === ctx.trustDomain || out.some((t) => t.name === bundle.trustDomain))
      continue;
    out.push({ name: bundle.trustDomain, pems: [...bundle.pems] });
  }
  if (out.length === 0) return undefined;
  // In peer-name order (peerNames is sorted): stable, unlike the peers' generated trust domains.
  return [{ name: ctx.trustDomain, pems: localRoots.pems }, ...out];
}
