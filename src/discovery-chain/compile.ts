/**
 * The discovery chain, compiled (Consul `agent/consul/discoverychain`): an upstream's service and
 * the `service-resolver` entries → the target traffic goes to and, in order, where it fails over.
 * Pure: the same upstream and resolvers always give the same chain (docs/architecture.md
 * "Discovery chain"). This is the chain's resolver node; routers and splitters in front of it are
 * compiled by `compileRoutes` (./routes.ts).
 */
import { nextRedirect } from '../catalog/service-resolver.js';
import type {
  ResolverLoadBalancer,
  ResolverTarget,
  ServiceResolverEntry,
} from '../catalog/types.js';
import { chainTargetId, defaultNamespace, defaultPartition } from '../mesh/names.js';
import { failoverTargets, type SamenessLookup } from './sameness.js';

/** Where traffic can go: a service (subset) in a datacenter, or a peer's service. */
export interface ChainTarget {
  /**
   * Consul's target ID, e.g. `v1.api.default.default.dc1` or `api.default.default.external.peer-a`.
   */
  readonly id: string;
  readonly service: string;
  readonly subset: string;
  readonly namespace: string;
  readonly partition: string;
  /** Empty for a peer's service. */
  readonly datacenter: string;
  /** The local name of the peering; empty for this cluster. */
  readonly peer: string;
  /** The subset's filter (empty: every instance). */
  readonly filter: string;
  /** Only instances whose checks all pass (a warning one is left out, not degraded). */
  readonly onlyPassing: boolean;
  /**
   * The subset is named but no resolver defines it (its definition was deleted after the
   * reference was written): the target has no instances rather than all of them.
   */
  readonly undefinedSubset?: true;
}

export interface CompiledChain {
  /** The upstream's destination service. */
  readonly service: string;
  /** No resolver applies: the upstream is built as it was before resolvers existed. */
  readonly isDefault: boolean;
  readonly primary: ChainTarget;
  /** Failover targets in order, without the primary and without repeats. */
  readonly failover: readonly ChainTarget[];
  /** 0: the default. */
  readonly connectTimeoutMs: number;
  /** 0: Envoy's default. */
  readonly requestTimeoutMs: number;
  readonly loadBalancer?: ResolverLoadBalancer | undefined;
}

export interface ChainRequest {
  readonly service: string;
  /** The upstream's datacenter (the local one unless the upstream names another). */
  readonly datacenter: string;
  /** A subset a split or route names (a resolver's Redirect still applies, as in Consul). */
  readonly subset?: string | undefined;
  /** A peer's service (a split to a peer): no resolver applies. */
  readonly peer?: string | undefined;
}

type Lookup = (service: string) => ServiceResolverEntry | undefined;

/**
 * Follows redirects from the upstream's service (a redirect to another local service continues in
 * that service's resolver; one to a peer, another datacenter or the resolver's own subset ends
 * there), then takes the final resolver's subset and failover targets (a sameness group's members
 * when the rule names one, or the default group's when no rule applies). Loops are refused when
 * the entries are written; should one appear anyway, the walk stops where it would repeat.
 */
export function compileChain(
  req: ChainRequest,
  resolver: Lookup,
  groups?: SamenessLookup,
): CompiledChain {
  const first = req.peer ? undefined : resolver(req.service);
  let at: Omit<ResolverTarget, 'service'> & { service: string } = {
    service: req.service,
    serviceSubset: req.subset ?? '',
    peer: req.peer ?? '',
    datacenter: req.peer ? '' : req.datacenter,
  };
  let options = first;
  const seen = new Set([req.service]);
  for (let r = first; r?.redirect; ) {
    const t = r.redirect;
    at = {
      service: t.service || at.service,
      serviceSubset: t.serviceSubset,
      peer: t.peer,
      datacenter: t.peer ? '' : t.datacenter || at.datacenter,
    };
    const next = nextRedirect(r) === undefined ? undefined : at.service;
    if (next === undefined || seen.has(next)) break;
    seen.add(next);
    r = resolver(next);
    if (r) options = r;
  }
  const final = at.peer ? undefined : resolver(at.service);
  const subset = at.peer ? '' : at.serviceSubset || final?.defaultSubset || '';
  const primary = target(at.service, subset, at.datacenter, at.peer, resolver);
  const failover: ChainTarget[] = [];
  const rule = final?.failover[subset] ?? final?.failover['*'];
  const targets =
    at.peer || final?.redirect ? [] : failoverTargets(rule, at.service, subset, groups);
  for (const t of targets) {
    const service = t.service || at.service;
    const own = t.peer ? '' : t.serviceSubset || resolver(service)?.defaultSubset || '';
    const next = target(
      service,
      own,
      t.peer ? '' : t.datacenter || at.datacenter,
      t.peer,
      resolver,
    );
    if (next.id !== primary.id && !failover.some((f) => f.id === next.id)) failover.push(next);
  }
  return {
    service: req.service,
    isDefault: first === undefined && failover.length === 0,
    primary,
    failover,
    connectTimeoutMs: final?.connectTimeoutMs || options?.connectTimeoutMs || 0,
    requestTimeoutMs: final?.requestTimeoutMs || options?.requestTimeoutMs || 0,
    loadBalancer: final?.loadBalancer ?? options?.loadBalancer,
  };
}

function target(
  service: string,
  subset: string,
  datacenter: string,
  peer: string,
  resolver: Lookup,
): ChainTarget {
  const name = { name: service, namespace: defaultNamespace, partition: defaultPartition };
  const def = subset ? resolver(service)?.subsets[subset] : undefined;
  return {
    id: chainTargetId(name, { subset, datacenter, peer }),
    service,
    subset,
    namespace: defaultNamespace,
    partition: defaultPartition,
    datacenter,
    peer,
    filter: def?.filter ?? '',
    onlyPassing: def?.onlyPassing ?? false,
    ...(subset && !peer && !def ? { undefinedSubset: true as const } : {}),
  };
}
