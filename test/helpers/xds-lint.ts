/**
 * Envoy's cross-resource rules over one proxy's resources (docs/architecture.md §9 item 2): names
 * are unique per type; every cluster a listener or route names exists; every RDS route
 * configuration, SDS secret and EDS load assignment referenced exists; EDS clusters take endpoints
 * from ADS; filter chain matches are unique within a listener; a tcp_proxy without a cluster
 * follows sni_cluster.
 */
import { unpackAny } from '../../src/proto-any.js';
import { extractRefs } from '../../src/xds/cache/refs.js';
import { TypeUrl } from '../../src/xds/types.js';
import '../../src/xds/registry.js';

export interface LintResource {
  readonly typeUrl: string;
  readonly name: string;
  readonly message: Record<string, unknown>;
}

type Obj = Record<string, unknown>;

/** Every object in a message tree, with `Any` values unpacked. */
function* walk(value: unknown): Generator<Obj> {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return;
  if (Array.isArray(value)) {
    for (const v of value) yield* walk(v);
    return;
  }
  const o = value as Obj;
  if (o.$type === 'google.protobuf.Any') {
    const inner = unpackAny(o as never);
    if (inner) yield* walk(inner);
    return;
  }
  yield o;
  for (const [k, v] of Object.entries(o)) if (k !== '$type') yield* walk(v);
}

function clusterRefs(message: Obj): string[] {
  const out: string[] = [];
  for (const o of walk(message)) {
    const t = o.$type;
    const spec = o.clusterSpecifier as { $case: string; value: unknown } | undefined;
    if (
      (t === 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy' ||
        t === 'envoy.config.route.v3.RouteAction') &&
      spec?.$case === 'cluster'
    ) {
      out.push(spec.value as string);
    }
    // An aggregate cluster's members (failover) are clusters too.
    if (t === 'envoy.extensions.clusters.aggregate.v3.ClusterConfig')
      out.push(...(o.clusters as string[]));
  }
  return out;
}

export function lintResources(resources: readonly LintResource[]): string[] {
  const errors: string[] = [];
  const byType = new Map<string, Set<string>>();
  for (const r of resources) {
    const names = byType.get(r.typeUrl) ?? new Set<string>();
    if (names.has(r.name)) errors.push(`duplicate ${r.typeUrl} "${r.name}"`);
    names.add(r.name);
    byType.set(r.typeUrl, names);
  }
  const has = (t: string, n: string) => byType.get(t)?.has(n) ?? false;
  for (const r of resources) {
    for (const ref of extractRefs(r.message)) {
      if (!has(ref.typeUrl, ref.name))
        errors.push(`${r.name}: references missing ${ref.typeUrl.split('.').pop()} "${ref.name}"`);
    }
    for (const c of clusterRefs(r.message))
      if (c !== '' && !has(TypeUrl.cluster, c))
        errors.push(`${r.name}: routes to missing cluster "${c}"`);
    if (r.typeUrl === TypeUrl.cluster) errors.push(...lintCluster(r));
    if (r.typeUrl === TypeUrl.listener) errors.push(...lintListener(r));
  }
  return errors;
}

function lintCluster(r: LintResource): string[] {
  const kind = r.message.clusterDiscoveryType as { value: unknown } | undefined;
  if (kind?.value === 1 /* STRICT_DNS */) return lintDnsCluster(r);
  if (kind?.value !== 3 /* EDS */) return [];
  const eds = r.message.edsClusterConfig as
    | { edsConfig?: { configSourceSpecifier?: { $case: string } } }
    | undefined;
  return eds?.edsConfig?.configSourceSpecifier?.$case === 'ads'
    ? []
    : [`${r.name}: EDS cluster does not use ADS`];
}

/** A DNS cluster resolves its inline hosts: it needs some, and an EDS config would be ignored. */
function lintDnsCluster(r: LintResource): string[] {
  const errors: string[] = [];
  if (r.message.edsClusterConfig !== undefined)
    errors.push(`${r.name}: STRICT_DNS cluster with an eds_cluster_config`);
  const la = r.message.loadAssignment as { endpoints?: { lbEndpoints?: unknown[] }[] } | undefined;
  const hosts = (la?.endpoints ?? []).reduce((n, l) => n + (l.lbEndpoints?.length ?? 0), 0);
  if (hosts === 0) errors.push(`${r.name}: STRICT_DNS cluster without inline hosts`);
  return errors;
}

function lintListener(r: LintResource): string[] {
  const errors: string[] = [];
  const seen = new Set<string>();
  for (const chain of (r.message.filterChains as Obj[] | undefined) ?? []) {
    const match = JSON.stringify(chain.filterChainMatch ?? null);
    if (seen.has(match)) errors.push(`${r.name}: two filter chains with the same match ${match}`);
    seen.add(match);
    const filters = (chain.filters as Obj[] | undefined) ?? [];
    filters.forEach((f, i) => {
      for (const o of walk(f)) {
        const spec = o.clusterSpecifier as { $case: string; value: unknown } | undefined;
        if (
          o.$type === 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy' &&
          spec?.value === '' &&
          filters[i - 1]?.name !== 'envoy.filters.network.sni_cluster'
        ) {
          errors.push(`${r.name}: tcp_proxy without a cluster and no sni_cluster before it`);
        }
      }
    });
  }
  return errors;
}
