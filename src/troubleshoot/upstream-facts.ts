import { matchesSubset, parseSubsetFilter } from '../catalog/subset-filter.js';
import {
  type CatalogReader,
  instanceHealth,
  type ServiceInstance,
  type Upstream,
} from '../catalog/types.js';
import { serviceProtocol } from '../catalog/lookups.js';
import type { RouteHttpMatch } from '../catalog/routing-types.js';
import { type ChainTarget, type CompiledChain, compileChain } from '../discovery-chain/compile.js';
import { type ChainRoute, type RoutedChain, compileRoutes } from '../discovery-chain/routes.js';
import { samenessLookup } from '../discovery-chain/sameness.js';
import { IsthmusError } from '../errors.js';
import { failoverTargetClusterName, peeredUpstreamClusterName, subsetSni } from '../mesh/names.js';
import { newestStreams, resourceStatuses } from '../xds/status.js';
import { TypeUrl } from '../xds/types.js';
import type { TroubleshootSources } from './gather.js';
import type { ChainFact, RouteFact, TargetFact, UpstreamFacts } from './upstream-checks.js';

type Sources = TroubleshootSources & { readonly ca: { readonly trustDomain: string } };

/**
 * Facts for `troubleshoot upstream`: the upstream's compiled chain as the sidecar builder compiles
 * it (src/snapshot/sidecar.ts), each target with the Envoy cluster and SNI it is built as
 * (src/snapshot/chain-upstream.ts), its instances, and what the proxy ACKed. not_found when the
 * proxy has no such upstream.
 */
export function gatherUpstreamFacts(src: Sources, proxyId: string, name: string): UpstreamFacts {
  const proxy = src.catalog.instance(proxyId);
  const u = proxy && findUpstream(proxy, name);
  if (!proxy || !u) {
    const names = (proxy?.proxy?.upstreams ?? []).map(upstreamLabel);
    throw new IsthmusError(
      'not_found',
      proxy
        ? `proxy ${JSON.stringify(proxyId)} has no upstream ${JSON.stringify(name)} (its upstreams: ${names.join(', ') || 'none'})`
        : `proxy ${JSON.stringify(proxyId)} is not registered (see isthmus services list)`,
    );
  }
  const routed = routesOf(src, u);
  const chain = chainOf(src, u, routed?.routes.at(-1)?.splits[0]?.chain);
  const plain = chain.targets.map((t) => targetFact(src, t));
  const rendered = plain.filter((t) => t.cluster);
  const aggregate = rendered.length > 1 ? rendered[0]?.cluster : undefined;
  const targets = aggregate ? asMembers(plain, aggregate) : plain;
  const session = newestStreams(src.xds.streamStatuses()).get(proxyId);
  const cds = session
    ? resourceStatuses(session)
        .filter((s) => s.typeUrl === TypeUrl.cluster)
        .map((s) => ({ name: s.name, status: s.status }))
    : undefined;
  return {
    proxyId,
    upstream: upstreamLabel(u),
    datacenter: src.datacenter,
    chain: chain.fact,
    targets,
    aggregate,
    clusters: cds,
    ...(routed ? { routes: routed.routes.map((r) => routeFact(src, r)) } : {}),
  };
}

/**
 * The upstream's router and splitter routes, compiled as the sidecar builder compiles them: only
 * for an HTTP-family service of this cluster (src/snapshot/sidecar.ts).
 */
function routesOf(src: Sources, u: Upstream): RoutedChain | undefined {
  if (u.destinationPeer || serviceProtocol(src.catalog, u.destinationName) === 'tcp')
    return undefined;
  const catalog = src.catalog;
  return compileRoutes(
    { service: u.destinationName, datacenter: u.datacenter || src.datacenter },
    {
      resolver: (n) => catalog.configEntry('service-resolver', n),
      splitter: (n) => catalog.configEntry('service-splitter', n),
      router: (n) => catalog.configEntry('service-router', n),
      groups: samenessLookup(catalog),
    },
  );
}

/** One route: what it matches, and per split its resolver node's targets with their health. */
function routeFact(src: Sources, r: ChainRoute): RouteFact {
  return {
    match: r.match ? describeMatch(r.match) : '',
    splits: r.splits.map((s) => ({
      weight: s.weight,
      targets: [s.chain.primary, ...s.chain.failover].map((t) => targetFact(src, t)),
    })),
  };
}

/** `PathPrefix /v2/ (any case), Header x-debug present, Methods GET|POST`. */
function describeMatch(m: RouteHttpMatch): string {
  const path = m.pathExact
    ? `PathExact ${m.pathExact}`
    : m.pathPrefix
      ? `PathPrefix ${m.pathPrefix}`
      : m.pathRegex
        ? `PathRegex ${m.pathRegex}`
        : '';
  const parts = [
    path && m.caseInsensitive ? `${path} (any case)` : path,
    ...m.header.map(
      (h) =>
        `Header ${h.name}${h.invert ? ' not' : ''} ${
          h.present
            ? 'present'
            : h.exact
              ? `= ${h.exact}`
              : h.prefix
                ? `prefix ${h.prefix}`
                : h.suffix
                  ? `suffix ${h.suffix}`
                  : `~ ${h.regex}`
        }`,
    ),
    ...m.queryParam.map(
      (q) =>
        `QueryParam ${q.name} ${q.present ? 'present' : q.exact ? `= ${q.exact}` : `~ ${q.regex}`}`,
    ),
    m.methods.length > 0 ? `Methods ${m.methods.join('|')}` : '',
  ];
  return parts.filter((x) => x).join(', ');
}

/** `api`, or `api?peer=cluster-a` for a DestinationPeer upstream (its listener's name). */
function upstreamLabel(u: Upstream): string {
  return u.destinationPeer ? `${u.destinationName}?peer=${u.destinationPeer}` : u.destinationName;
}

function findUpstream(proxy: ServiceInstance, name: string): Upstream | undefined {
  const ups = proxy.proxy?.upstreams ?? [];
  return ups.find((u) => upstreamLabel(u) === name) ?? ups.find((u) => u.destinationName === name);
}

function chainOf(
  src: Sources,
  u: Upstream,
  catchAll: CompiledChain | undefined,
): { fact: ChainFact; targets: ChainTarget[] } {
  const datacenter = u.datacenter || src.datacenter;
  if (u.destinationPeer) {
    // DestinationPeer upstreams bypass the chain (§5b), as in Consul.
    const t: ChainTarget = {
      id: `${u.destinationName}.default.default.external.${u.destinationPeer}`,
      service: u.destinationName,
      subset: '',
      namespace: 'default',
      partition: 'default',
      datacenter: '',
      peer: u.destinationPeer,
      filter: '',
      onlyPassing: false,
    };
    return {
      fact: { service: u.destinationName, resolver: false, failoverFrom: '' },
      targets: [t],
    };
  }
  const catalog = src.catalog;
  const groups = samenessLookup(catalog);
  const resolver = (n: string) => catalog.configEntry('service-resolver', n);
  // With routes, the listener's own cluster is the catch-all's first split (src/snapshot).
  const chain =
    catchAll ?? compileChain({ service: u.destinationName, datacenter }, resolver, groups);
  return {
    fact: {
      service: u.destinationName,
      resolver: resolver(u.destinationName) !== undefined,
      failoverFrom: failoverSource(catalog, chain.primary, chain.failover.length > 0),
      ...(chain.connectTimeoutMs ? { connectTimeoutMs: chain.connectTimeoutMs } : {}),
      ...(chain.requestTimeoutMs ? { requestTimeoutMs: chain.requestTimeoutMs } : {}),
    },
    targets: [chain.primary, ...chain.failover],
  };
}

/** Which entry gave the failover targets: the resolver's rule, a group it names, the default. */
function failoverSource(catalog: CatalogReader, primary: ChainTarget, any: boolean): string {
  if (!any) return '';
  const r = catalog.configEntry('service-resolver', primary.service);
  const rule = r?.failover[primary.subset] ?? r?.failover['*'];
  if (rule?.samenessGroup) return `sameness-group ${rule.samenessGroup}`;
  if (rule) return `service-resolver ${primary.service}`;
  const g = catalog.configEntries('sameness-group').find((e) => e.defaultForFailover);
  return g ? `sameness-group ${g.name} (DefaultForFailover)` : '';
}

function targetFact(src: Sources, t: ChainTarget): TargetFact {
  const base = { id: t.id, service: t.service, subset: t.subset, peer: t.peer };
  if (t.peer) {
    const peering = src.peerings.read(t.peer);
    const bundle = !!peering?.peerTrustDomain && (peering?.peerCaPems.length ?? 0) > 0;
    const imported = src.imported.instancesOf(t.peer, t.service, t.namespace);
    const typical = imported.filter((i) => i.kind === 'typical');
    const sidecar = imported.find(
      (i) =>
        i.kind === 'connect-proxy' &&
        (i.peerMeta?.sni.length ?? 0) > 0 &&
        instanceHealth(i) !== 'critical',
    );
    const sni = sidecar?.peerMeta?.sni[0];
    const cluster =
      bundle && sni && peering
        ? peeredUpstreamClusterName(peering.peerTrustDomain, t.peer, {
            name: t.service,
            namespace: t.namespace,
          })
        : undefined;
    return {
      ...base,
      peeringState: peering?.state,
      bundle,
      meshEndpoints: sidecar !== undefined,
      ...(cluster ? { cluster } : {}),
      ...(sni ? { sni } : {}),
      total: typical.length,
      healthy: typical.filter((i) => instanceHealth(i) !== 'critical').length,
    };
  }
  const svc = { name: t.service, namespace: t.namespace, partition: t.partition };
  const sni = subsetSni(src.ca.trustDomain, t.datacenter, svc, t.subset);
  const parsed = parseSubsetFilter(t.filter);
  const all = src.catalog.instancesOf(t.service).filter((i) => i.kind === 'typical');
  const inSubset = all.filter(
    (i) => !t.undefinedSubset && (!t.subset || !parsed.ok || matchesSubset(parsed.filter, i)),
  );
  const ok = (i: ServiceInstance) =>
    t.onlyPassing ? instanceHealth(i) === 'passing' : instanceHealth(i) !== 'critical';
  return {
    ...base,
    datacenter: t.datacenter,
    cluster: sni,
    sni,
    ...(t.subset ? { subsetFilter: t.filter, subsetDefined: !t.undefinedSubset } : {}),
    serviceInstances: all.length,
    total: inSubset.length,
    healthy: inSubset.filter(ok).length,
  };
}

/**
 * With more than one target that can be rendered, Envoy knows them as the members of an aggregate
 * named as the primary's cluster, numbered in order among the rendered ones.
 */
function asMembers(targets: readonly TargetFact[], aggregate: string): TargetFact[] {
  let i = 0;
  return targets.map((t) =>
    t.cluster ? { ...t, cluster: failoverTargetClusterName(i++, aggregate) } : t,
  );
}
