import type { RouteDestination, ServiceInstance, Upstream } from '../catalog/types.js';
import type { Leaf } from '../ca/types.js';
import type { ChainRoute, RoutedChain } from '../discovery-chain/routes.js';
import { upstreamListenerName, upstreamRouteName } from '../mesh/names.js';
import { serviceProtocol } from '../catalog/lookups.js';
import type { BuildContext, PeerBundle } from './context.js';
import { type ChainUpstream, chainCluster, chainDeps, hashPoliciesOf } from './chain-upstream.js';
import type {
  AggregateClusterIR,
  EdsClusterIR,
  RouteIR,
  UpstreamIR,
  WeightedClusterIR,
} from './types.js';

/**
 * An upstream with a `service-router` or `service-splitter` (docs/architecture.md §5b "Routers
 * and splitters"): its route configuration, named as the upstream (Consul's), holds the router's
 * routes in order and a catch-all; each sends to one resolver node's cluster or to weighted ones.
 * Clusters are named per resolver node as without a router, so stats keep Consul's names. A split
 * whose targets are not known yet (a peer's, before it replicated) is left out until they are;
 * a route left with none answers 503. Undefined when no cluster can be rendered yet.
 */
export function routedUpstream(
  proxy: ServiceInstance,
  u: Upstream,
  routed: RoutedChain,
  leaf: Leaf,
  ctx: BuildContext,
): ChainUpstream | undefined {
  const protocol = serviceProtocol(ctx.catalog, u.destinationName);
  const clusters = new Map<string, EdsClusterIR | AggregateClusterIR>();
  const bundles = new Map<string, PeerBundle>();
  const deps = new Set<string>();
  const routes = routed.routes.map((r): RouteIR => {
    const weighted: WeightedClusterIR[] = [];
    for (const split of r.splits) {
      for (const dep of chainDeps(split.chain, ctx)) deps.add(dep);
      const node = chainCluster(proxy, u, split.chain, leaf, ctx, protocol);
      if (!node) continue;
      if (!clusters.has(node.cluster.name)) clusters.set(node.cluster.name, node.cluster);
      for (const b of node.bundles) bundles.set(b.peer, b);
      weighted.push({
        name: node.cluster.name,
        weight: Math.round(split.weight * 100),
        ...(split.requestHeaders ? { requestHeaders: split.requestHeaders } : {}),
        ...(split.responseHeaders ? { responseHeaders: split.responseHeaders } : {}),
      });
    }
    return { ...routeOptions(r), clusters: weighted };
  });
  const catchAll = routes[routes.length - 1]?.clusters[0];
  const cluster = catchAll ? clusters.get(catchAll.name) : [...clusters.values()][0];
  if (!cluster) return undefined;
  const bindAddress = u.localBindAddress || '127.0.0.1';
  const upstream: UpstreamIR = {
    listenerName: upstreamListenerName(u.destinationName, bindAddress, u.localBindPort),
    bindAddress,
    bindPort: u.localBindPort,
    service: u.destinationName,
    protocol,
    routeName: upstreamRouteName(u.destinationName),
    cluster,
    routed: { routes, clusters: [...clusters.values()] },
  };
  return { upstream, bundles: [...bundles.values()], deps: [...deps] };
}

/**
 * A route's match and its destination's options (Consul agent/xds routes.go): the destination's
 * `RequestTimeout`, else a lone resolver's; retries on what `RetryOn`, `RetryOnConnectFailure`
 * and `RetryOnStatusCodes` name.
 */
function routeOptions(r: ChainRoute): Omit<RouteIR, 'clusters'> {
  const d = r.destination;
  const only = r.splits.length === 1 ? r.splits[0]?.chain.requestTimeoutMs : 0;
  const timeoutMs = d?.requestTimeoutMs || only || 0;
  const retry = d && retryPolicy(d);
  // Consul gives a split node the first hash-based load balancer among its splits' resolvers.
  const hashPolicies = r.splits.map((s) => hashPoliciesOf(s.chain)).find((h) => h !== undefined);
  return {
    ...(r.match ? { match: r.match } : {}),
    ...(d?.prefixRewrite ? { prefixRewrite: d.prefixRewrite } : {}),
    ...(timeoutMs ? { timeoutMs } : {}),
    ...(d?.idleTimeoutMs ? { idleTimeoutMs: d.idleTimeoutMs } : {}),
    ...(retry ? { retry } : {}),
    ...(d?.requestHeaders ? { requestHeaders: d.requestHeaders } : {}),
    ...(d?.responseHeaders ? { responseHeaders: d.responseHeaders } : {}),
    ...(hashPolicies ? { hashPolicies } : {}),
  };
}

function retryPolicy(d: RouteDestination): RouteIR['retry'] {
  const on = [...d.retryOn];
  if (d.retryOnConnectFailure) on.push('connect-failure');
  if (d.retryOnStatusCodes.length > 0) on.push('retriable-status-codes');
  if (d.numRetries === 0 && on.length === 0) return undefined;
  return {
    numRetries: d.numRetries,
    retryOn: [...new Set(on)].join(','),
    retriableStatusCodes: [...d.retryOnStatusCodes],
  };
}
