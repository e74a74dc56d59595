/**
 * The discovery chain's router and splitter nodes (Consul `agent/consul/discoverychain`
 * compile.go): an upstream's `service-router` and `service-splitter` entries → routes in order,
 * each sending to one resolver node or to weighted ones. Pure, like `compileChain`
 * (docs/architecture.md §5b "Routers and splitters").
 */
import type {
  HeaderModifiers,
  RouteDestination,
  RouteHttpMatch,
  ServiceResolverEntry,
  ServiceRouterEntry,
  ServiceSplitterEntry,
} from '../catalog/types.js';
import { type ChainRequest, type CompiledChain, compileChain } from './compile.js';
import type { SamenessLookup } from './sameness.js';

export interface ChainLookups {
  resolver(service: string): ServiceResolverEntry | undefined;
  splitter(service: string): ServiceSplitterEntry | undefined;
  router(service: string): ServiceRouterEntry | undefined;
  /** Sameness groups, for failover where no resolver rule applies (absent: none). */
  readonly groups?: SamenessLookup | undefined;
}

/** Where a route sends a share of its requests: a resolver node. */
export interface ChainSplit {
  /** Percent, at most two decimals; a route's splits sum to 100. */
  readonly weight: number;
  readonly chain: CompiledChain;
  readonly requestHeaders?: HeaderModifiers | undefined;
  readonly responseHeaders?: HeaderModifiers | undefined;
}

export interface ChainRoute {
  /** Undefined: every request (the router's catch-all, or a splitter alone). */
  readonly match?: RouteHttpMatch | undefined;
  /** The router destination's options (retries, timeouts, rewrite); none for the catch-all. */
  readonly destination?: RouteDestination | undefined;
  readonly splits: readonly ChainSplit[];
}

export interface RoutedChain {
  readonly service: string;
  /** In order; the last one matches every request. */
  readonly routes: readonly ChainRoute[];
}

/**
 * The routes of an upstream whose service has a router or a splitter; undefined when it has
 * neither (the upstream is then its resolver node alone, built as before). A router's
 * destinations go to their service's splitter, else its resolver (routers do not chain, as in
 * Consul); a split to another service without a subset is split again by that service's splitter,
 * weights multiplied. Split loops are refused when entries are written; should one appear anyway,
 * the split that would repeat goes to its resolver.
 */
export function compileRoutes(req: ChainRequest, lookups: ChainLookups): RoutedChain | undefined {
  const router = lookups.router(req.service);
  if (!router && !lookups.splitter(req.service)) return undefined;
  const node = (service: string, subset: string) =>
    splitOrResolve({ ...req, service, subset }, 100, lookups, new Set());
  const routes: ChainRoute[] = (router?.routes ?? []).map((r) => ({
    match: r.match,
    destination: r.destination,
    splits: node(r.destination.service || req.service, r.destination.serviceSubset),
  }));
  routes.push({ splits: node(req.service, '') });
  return { service: req.service, routes };
}

function splitOrResolve(
  req: ChainRequest,
  share: number,
  lookups: ChainLookups,
  seen: ReadonlySet<string>,
): ChainSplit[] {
  const splitter = req.subset || req.peer ? undefined : lookups.splitter(req.service);
  if (!splitter || seen.has(req.service))
    return [{ weight: share, chain: compileChain(req, lookups.resolver, lookups.groups) }];
  const inside = new Set([...seen, req.service]);
  return splitter.splits.flatMap((s) => {
    const weight = Math.round(share * s.weight) / 100;
    if (weight === 0) return [];
    const service = s.service || req.service;
    const next: ChainRequest = {
      service,
      datacenter: req.datacenter,
      subset: s.serviceSubset,
      peer: s.peer,
    };
    const onward = !s.peer && !s.serviceSubset && service !== req.service;
    const splits = onward
      ? splitOrResolve(next, weight, lookups, inside)
      : [{ weight, chain: compileChain(next, lookups.resolver, lookups.groups) }];
    return splits.map((x) => ({
      ...x,
      ...(s.requestHeaders && !x.requestHeaders ? { requestHeaders: s.requestHeaders } : {}),
      ...(s.responseHeaders && !x.responseHeaders ? { responseHeaders: s.responseHeaders } : {}),
    }));
  });
}
