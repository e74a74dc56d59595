import { typeUrlOf, unpackAny } from '../../proto-any.js';
import { TypeUrl, type XdsTypeUrl } from '../types.js';
import { Cluster_DiscoveryType } from '../../gen/envoy/config/cluster/v3/cluster.js';

/** A name one resource needs another resource of the given type to have. */
export interface ResourceRef {
  readonly typeUrl: XdsTypeUrl;
  readonly name: string;
}

type Visitor = (node: Record<string, unknown>, refs: ResourceRef[]) => void;

/**
 * The references Envoy resolves dynamically over ADS: an EDS cluster's load assignment, an SDS
 * secret named by a TLS context, an RDS route configuration named by an HTTP connection manager.
 * Anything inside `Any` (filters, transport sockets) is unpacked and walked too.
 */
const visitors: Readonly<Record<string, Visitor>> = {
  'envoy.config.cluster.v3.Cluster': (c, refs) => {
    const kind = c.clusterDiscoveryType as { $case: string; value: unknown } | undefined;
    if (kind?.$case === 'type' && kind.value === Cluster_DiscoveryType.EDS) {
      const eds = c.edsClusterConfig as { serviceName?: string } | undefined;
      refs.push({ typeUrl: TypeUrl.endpoint, name: eds?.serviceName || (c.name as string) });
    }
  },
  'envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig': (s, refs) => {
    // Without sds_config the secret is static (bootstrap), not delivered by us.
    if (s.sdsConfig !== undefined) refs.push({ typeUrl: TypeUrl.secret, name: s.name as string });
  },
  'envoy.extensions.filters.network.http_connection_manager.v3.Rds': (r, refs) => {
    refs.push({ typeUrl: TypeUrl.route, name: r.routeConfigName as string });
  },
};

/**
 * `Any` payloads isthmus writes whose message cannot hold a visited type at any depth, so they are
 * not unpacked: a gateway listener carries a `tcp_proxy` per routed SNI, thousands of them.
 */
const refFree = new Set(
  [
    'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
    'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
    'envoy.extensions.filters.network.rbac.v3.RBAC',
    'envoy.extensions.filters.http.rbac.v3.RBAC',
    'envoy.extensions.filters.http.router.v3.Router',
  ].map(typeUrlOf),
);

function walk(value: unknown, refs: ResourceRef[]): void {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return;
  if (Array.isArray(value)) {
    for (const item of value) walk(item, refs);
    return;
  }
  const node = value as Record<string, unknown>;
  const type = node.$type;
  if (type === 'google.protobuf.Any') {
    if (refFree.has(node.typeUrl as string)) return;
    const inner = unpackAny(node as never);
    if (inner) walk(inner, refs);
    return;
  }
  if (typeof type === 'string') visitors[type]?.(node, refs);
  for (const key of Object.keys(node)) if (key !== '$type') walk(node[key], refs);
}

export function extractRefs(message: unknown): ResourceRef[] {
  const refs: ResourceRef[] = [];
  walk(message, refs);
  return refs;
}
