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
import type { BuildContext, Built, PeerBundle } from './context.js';
import { type Changes, indexOfSorted, type Piece, PieceMemo, reuse, sameDeps } from './pieces.js';
import { rbacForDestination } from './intentions.js';
import { connectTimeoutMs, upstreamEndpoints, withEndpoints } from './lookups.js';
import { serviceProtocol } from '../catalog/lookups.js';
import { peerDeps, peeredUpstream, peerRootsSecret } from './peered.js';
import { chainDeps, chainUpstream } from './chain-upstream.js';
import { compileChain } from '../discovery-chain/compile.js';
import { type ChainLookups, compileRoutes } from '../discovery-chain/routes.js';
import { samenessLookup } from '../discovery-chain/sameness.js';
import { routedUpstream } from './routed-upstream.js';
import { isExportedTo } from '../peering/exports.js';
import type {
  PublicListenerIR,
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
  return new SidecarBuilder().build(proxy, leaf, ctx, 'all');
}

/** One upstream as built: its IR (none while incomplete) and the peer bundles it trusts. */
interface UpstreamPart {
  readonly upstream: UpstreamIR | undefined;
  readonly bundles: readonly PeerBundle[];
}

/** What the proxy's own service decides: its public listener and the roots it accepts. */
interface OwnPart {
  readonly localRoots: RootsSecretIR;
  readonly inbound: TrustDomainsSecretIR | undefined;
  readonly publicListener: PublicListenerIR;
}

/**
 * Builds one sidecar's snapshots again and again, each from the parts of the last that a change
 * did not touch (docs/architecture.md §2 "Incremental builds"): a part per upstream, depending on
 * the services, routers, splitters and peers its chain read, and the public listener, depending on
 * the proxy's own service. Kept parts are the same objects, so the publisher regenerates only the
 * resources of the upstreams that changed.
 */
export class SidecarBuilder {
  private readonly upstreams = new PieceMemo<UpstreamPart>();
  private readonly own = new PieceMemo<OwnPart>();
  private last:
    | {
        readonly proxy: ServiceInstance;
        readonly leaf: Leaf;
        readonly roots: BuildContext['roots'];
        readonly built: Built<SidecarSnapshot>;
      }
    | undefined;

  build(
    proxy: ServiceInstance,
    leaf: Leaf,
    ctx: BuildContext,
    changes: Changes,
  ): Built<SidecarSnapshot> {
    const last = changes === 'all' ? undefined : this.last;
    let dropped = new Map<string, Piece<UpstreamPart>>();
    let ownKept = false;
    // A new leaf, roots or registration reach here as `all`; the check keeps a missed one safe.
    if (!last || last.proxy !== proxy || last.leaf !== leaf || last.roots !== ctx.roots) {
      this.upstreams.clear();
      this.own.clear();
    } else {
      dropped = this.upstreams.invalidate(changes as ReadonlySet<string>);
      ownKept = this.own.invalidate(changes as ReadonlySet<string>).size === 0;
    }
    const patched = last && ownKept ? this.patch(last.built, dropped, proxy, leaf, ctx) : undefined;
    const built = patched ?? this.assemble(proxy, leaf, ctx, dropped);
    this.last = { proxy, leaf, roots: ctx.roots, built };
    return built;
  }

  /** The upstream with id `id` (its index among the proxy's upstreams), built unless held. */
  private upstream(
    id: string,
    proxy: ServiceInstance,
    leaf: Leaf,
    ctx: BuildContext,
    before: Piece<UpstreamPart> | undefined,
  ): UpstreamPart {
    return this.upstreams.get(id, () => {
      const u = proxy.proxy!.upstreams[Number(id)]!;
      const { value, deps } = upstreamPart(proxy, u, leaf, ctx);
      const previous = before?.value;
      return {
        value: {
          upstream: reuse(previous?.upstream, value.upstream),
          bundles: reuse(previous?.bundles, value.bundles),
        },
        deps,
      };
    });
  }

  /**
   * The last snapshot with the rebuilt upstreams swapped in where their predecessors stood, when
   * nothing else changed: the same listener names, bundles and dependencies. Work proportional to
   * the change, not to the upstreams (issue 14); undefined when the change reshaped the snapshot,
   * which is then assembled whole.
   */
  private patch(
    last: Built<SidecarSnapshot>,
    dropped: ReadonlyMap<string, Piece<UpstreamPart>>,
    proxy: ServiceInstance,
    leaf: Leaf,
    ctx: BuildContext,
  ): Built<SidecarSnapshot> | undefined {
    let upstreams: UpstreamIR[] | undefined;
    for (const [id, before] of dropped) {
      const part = this.upstream(id, proxy, leaf, ctx, before);
      if (part.bundles !== before.value.bundles) return undefined;
      if (!sameDeps(this.upstreams.depsOf(id), before.deps)) return undefined;
      const [was, now] = [before.value.upstream, part.upstream];
      if (was === now) continue;
      if (!was || !now || was.listenerName !== now.listenerName) return undefined;
      upstreams ??= [...last.snapshot.upstreams];
      const at = indexOfSorted(upstreams, was.listenerName, (u) => u.listenerName);
      if (upstreams[at] !== was) return undefined;
      upstreams[at] = now;
    }
    return upstreams ? { snapshot: { ...last.snapshot, upstreams }, deps: last.deps } : last;
  }

  /** A whole snapshot from the parts held and those built now. */
  private assemble(
    proxy: ServiceInstance,
    leaf: Leaf,
    ctx: BuildContext,
    dropped: ReadonlyMap<string, Piece<UpstreamPart>>,
  ): Built<SidecarSnapshot> {
    const destination = proxy.proxy?.destinationServiceName ?? proxy.name;
    const deps = new Set<string>([destination]);
    const upstreams: UpstreamIR[] = [];
    const peerRoots = new Map<string, RootsSecretIR>();
    (proxy.proxy?.upstreams ?? []).forEach((_, i) => {
      const id = String(i);
      const part = this.upstream(id, proxy, leaf, ctx, dropped.get(id));
      for (const dep of this.upstreams.depsOf(id)) deps.add(dep);
      if (part.upstream) upstreams.push(part.upstream);
      for (const bundle of part.bundles) peerRoots.set(bundle.peer, peerRootsSecret(bundle));
    });
    const own = this.own.get('own', () => ({
      value: ownPart(proxy, destination, leaf, ctx),
      deps: [destination],
    }));
    const snapshot: SidecarSnapshot = {
      kind: 'connect-proxy',
      proxyId: proxy.id,
      service: destination,
      spiffeId: leaf.spiffeId,
      leaf: { name: leafSecretName(leaf.spiffeId), certPem: leaf.certPem, keyPem: leaf.keyPem },
      roots: [
        own.localRoots,
        ...[...peerRoots.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
      ],
      ...(own.inbound ? { inbound: own.inbound } : {}),
      publicListener: own.publicListener,
      upstreams: upstreams.sort((a, b) => (a.listenerName < b.listenerName ? -1 : 1)),
    };
    return { snapshot, deps };
  }
}

/** One upstream and the catalog keys it was built from (see chainLookups). */
function upstreamPart(
  proxy: ServiceInstance,
  u: Upstream,
  leaf: Leaf,
  ctx: BuildContext,
): Piece<UpstreamPart> {
  if (u.destinationPeer) {
    const peered = peeredUpstream(proxy, u, leaf, ctx);
    return {
      value: { upstream: peered?.upstream, bundles: peered ? [peered.bundle] : [] },
      deps: peerDeps(ctx, u.destinationPeer, u.destinationName),
    };
  }
  const deps = new Set<string>([u.destinationName]);
  const req = { service: u.destinationName, datacenter: u.datacenter || ctx.datacenter };
  const lookups = chainLookups(ctx, deps);
  // Routers and splitters need HTTP; on a service that fell back to tcp only the resolver applies.
  const http = serviceProtocol(ctx.catalog, u.destinationName) !== 'tcp';
  const routed = http ? compileRoutes(req, lookups) : undefined;
  const chain = compileChain(req, lookups.resolver, lookups.groups);
  if (!routed && chain.isDefault)
    return { value: { upstream: localUpstream(proxy, u, leaf, ctx), bundles: [] }, deps };
  const built = routed
    ? routedUpstream(proxy, u, routed, leaf, ctx)
    : chainUpstream(proxy, u, chain, leaf, ctx);
  for (const dep of built?.deps ?? chainDeps(chain, ctx)) deps.add(dep);
  return { value: { upstream: built?.upstream, bundles: built?.bundles ?? [] }, deps };
}

function ownPart(
  proxy: ServiceInstance,
  destination: string,
  leaf: Leaf,
  ctx: BuildContext,
): OwnPart {
  const address = proxy.address || '0.0.0.0';
  const leafSecret = leafSecretName(leaf.spiffeId);
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
  return {
    localRoots,
    inbound,
    publicListener: {
      name: publicListenerName(address, proxy.port),
      address,
      port: proxy.port,
      protocol,
      leafSecret,
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
  };
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
    if (!bundle || !isExportedTo(ctx.catalog, peer, service)) continue;
    if (bundle.trustDomain === ctx.trustDomain || out.some((t) => t.name === bundle.trustDomain))
      continue;
    out.push({ name: bundle.trustDomain, pems: [...bundle.pems] });
  }
  if (out.length === 0) return undefined;
  // In peer-name order (peerNames is sorted): stable, unlike the peers' generated trust domains.
  return [{ name: ctx.trustDomain, pems: localRoots.pems }, ...out];
}
