import type { HashPolicy, Protocol, ServiceInstance, Upstream } from '../catalog/types.js';
import type { Leaf } from '../ca/types.js';
import type { ChainTarget, CompiledChain } from '../discovery-chain/compile.js';
import { parseSubsetFilter } from '../catalog/subset-filter.js';
import {
  failoverTargetClusterName,
  leafSecretName,
  localRootsSecretName,
  peerBundleSecretName,
  peeredUpstreamClusterName,
  serviceSpiffeId,
  subsetSni,
  upstreamListenerName,
  upstreamRouteName,
} from '../mesh/names.js';
import type { BuildContext, PeerBundle } from './context.js';
import { serviceProtocol } from '../catalog/lookups.js';
import { connectTimeoutMs, upstreamEndpoints, withEndpoints } from './lookups.js';
import { peerDeps, peeredSidecars, peeredUpstreamEndpoints, protocolOf } from './peered.js';
import type { AggregateClusterIR, EdsClusterIR, UpstreamIR } from './types.js';

/**
 * An upstream built from its discovery chain, the peers whose bundles it trusts, and what it reads.
 */
export interface ChainUpstream {
  readonly upstream: UpstreamIR;
  readonly bundles: readonly PeerBundle[];
  readonly deps: readonly string[];
}

/**
 * An upstream some `service-resolver` applies to (docs/architecture.md "Discovery chain"): one
 * cluster per target that can be rendered, named as Consul names them; with more than one target,
 * an aggregate cluster over them in failover order. A peer's target appears once its bundle and
 * replicated PeerMeta are known (as a peered upstream does). Undefined when no target can be
 * rendered yet.
 */
export function chainUpstream(
  proxy: ServiceInstance,
  u: Upstream,
  chain: CompiledChain,
  leaf: Leaf,
  ctx: BuildContext,
): ChainUpstream | undefined {
  const deps = chainDeps(chain, ctx);
  const node = chainCluster(proxy, u, chain, leaf, ctx);
  if (!node) return undefined;
  const { protocol } = node;
  const bindAddress = u.localBindAddress || '127.0.0.1';
  const http = protocol !== 'tcp';
  const upstream: UpstreamIR = {
    listenerName: upstreamListenerName(u.destinationName, bindAddress, u.localBindPort),
    bindAddress,
    bindPort: u.localBindPort,
    service: u.destinationName,
    protocol,
    routeName: http ? upstreamRouteName(u.destinationName) : undefined,
    cluster: node.cluster,
    ...(http && chain.requestTimeoutMs ? { requestTimeoutMs: chain.requestTimeoutMs } : {}),
    ...(http && hashPoliciesOf(chain) ? { hashPolicies: hashPoliciesOf(chain) } : {}),
  };
  return { upstream, bundles: node.bundles, deps };
}

/**
 * The hash policies of a chain's resolver, when its load balancer hashes (Consul applies them to
 * `ring_hash` and `maglev` only); they go on the route, the policy on the cluster.
 */
export function hashPoliciesOf(chain: CompiledChain): readonly HashPolicy[] | undefined {
  const lb = chain.loadBalancer;
  const hashed = lb?.policy === 'ring_hash' || lb?.policy === 'maglev';
  return hashed && lb.hashPolicies?.length ? lb.hashPolicies : undefined;
}

/** A resolver node's cluster (or aggregate), the protocol it speaks, and the bundles it trusts. */
export interface ChainCluster {
  readonly cluster: EdsClusterIR | AggregateClusterIR;
  readonly protocol: Protocol;
  readonly bundles: readonly PeerBundle[];
}

/**
 * One resolver node: a cluster per target that can be rendered, an aggregate over them when there
 * are several. `protocol`: the chain's (a router's or splitter's upstream); else the upstream
 * service's, or what a peer replicated for a peer primary. Undefined when no target can be
 * rendered yet.
 */
export function chainCluster(
  proxy: ServiceInstance,
  u: Upstream,
  chain: CompiledChain,
  leaf: Leaf,
  ctx: BuildContext,
  chainProtocol?: Protocol,
): ChainCluster | undefined {
  const targets = [chain.primary, ...chain.failover];
  const built = targets
    .map((t) =>
      t.peer
        ? peerTargetCluster(proxy, u, t, leaf, ctx)
        : localTargetCluster(proxy, u, t, leaf, ctx),
    )
    .filter((b) => b !== undefined);
  const [first, ...rest] = built;
  if (!first) return undefined;
  const protocol =
    chainProtocol ??
    (chain.primary.peer ? first.cluster.protocol : serviceProtocol(ctx.catalog, u.destinationName));
  const timeoutMs = chain.connectTimeoutMs || connectTimeoutMs;
  const asChain = (c: EdsClusterIR): EdsClusterIR => ({
    ...c,
    protocol,
    connectTimeoutMs: timeoutMs,
    chain: chain.loadBalancer ? { loadBalancer: chain.loadBalancer } : {},
  });
  return {
    cluster: failoverCluster(
      asChain(first.cluster),
      rest.map((b) => asChain(b.cluster)),
      timeoutMs,
    ),
    protocol,
    bundles: built.flatMap((b) => (b.bundle ? [b.bundle] : [])),
  };
}

/**
 * One target: its cluster. Several: an aggregate named as the primary's cluster over
 * `failover-target~<i>~<primary>` members, in failover order (Consul's names).
 */
function failoverCluster(
  primary: EdsClusterIR,
  failover: readonly EdsClusterIR[],
  timeoutMs: number,
): EdsClusterIR | AggregateClusterIR {
  if (failover.length === 0) return primary;
  return {
    aggregate: true,
    name: primary.name,
    connectTimeoutMs: timeoutMs,
    members: [primary, ...failover].map((c, i) => ({
      ...c,
      name: failoverTargetClusterName(i, primary.name),
    })),
  };
}

/** What a chain's upstream is rebuilt on: its local services and the peers it names. */
export function chainDeps(chain: CompiledChain, ctx: BuildContext): string[] {
  return [chain.primary, ...chain.failover].flatMap((t) =>
    t.peer ? peerDeps(ctx, t.peer, t.service) : [t.service],
  );
}

type TargetCluster = { cluster: EdsClusterIR; bundle?: PeerBundle };

/** A service (subset) of this cluster: its SNI is the cluster name, as today's upstreams. */
function localTargetCluster(
  proxy: ServiceInstance,
  u: Upstream,
  t: ChainTarget,
  leaf: Leaf,
  ctx: BuildContext,
): TargetCluster {
  const svc = { name: t.service, namespace: t.namespace, partition: t.partition };
  const sni = subsetSni(ctx.trustDomain, t.datacenter, svc, t.subset);
  // Filters are checked when the resolver is written; one not understood matches nothing.
  const parsed = parseSubsetFilter(t.filter);
  const subset =
    parsed.ok && t.subset ? { filter: parsed.filter, onlyPassing: t.onlyPassing } : undefined;
  const endpoints =
    parsed.ok && !t.undefinedSubset
      ? upstreamEndpoints(proxy, u, t.datacenter, svc, ctx, subset)
      : [];
  return {
    cluster: {
      name: sni,
      protocol: serviceProtocol(ctx.catalog, t.service),
      connectTimeoutMs,
      tls: {
        sni,
        leafSecret: leafSecretName(leaf.spiffeId),
        rootsSecret: localRootsSecretName,
        spiffeIds: [serviceSpiffeId(ctx.trustDomain, t.datacenter, svc)],
      },
      ...withEndpoints(endpoints),
    },
  };
}

/** A peer's service: SNI and SANs from what the peer replicated, its bundle trusted (issue 5). */
function peerTargetCluster(
  proxy: ServiceInstance,
  u: Upstream,
  t: ChainTarget,
  leaf: Leaf,
  ctx: BuildContext,
): TargetCluster | undefined {
  const bundle = ctx.peering?.bundle(t.peer);
  const sidecars = peeredSidecars(ctx, t.peer, t.service, t.namespace);
  const meta = sidecars[0]?.peerMeta;
  const sni = meta?.sni[0];
  if (!bundle || !meta || !sni) return undefined;
  const name = peeredUpstreamClusterName(bundle.trustDomain, t.peer, {
    name: t.service,
    namespace: t.namespace,
  });
  return {
    bundle,
    cluster: {
      name,
      protocol: protocolOf(meta.protocol),
      connectTimeoutMs,
      tls: {
        sni,
        leafSecret: leafSecretName(leaf.spiffeId),
        rootsSecret: peerBundleSecretName(t.peer),
        spiffeIds: [...meta.spiffeId],
      },
      ...withEndpoints(peeredUpstreamEndpoints(proxy, u, t, sidecars, ctx)),
    },
  };
}
