import {
  Cluster,
  Cluster_DiscoveryType,
  Cluster_DnsLookupFamily,
  Cluster_LbPolicy,
} from '../../gen/envoy/config/cluster/v3/cluster.js';
import { ClusterLoadAssignment } from '../../gen/envoy/config/endpoint/v3/endpoint.js';
import { ClusterConfig as AggregateClusterConfig } from '../../gen/envoy/extensions/clusters/aggregate/v3/cluster.js';
import { UpstreamTlsContext } from '../../gen/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { SubjectAltNameMatcher_SanType } from '../../gen/envoy/extensions/transport_sockets/tls/v3/common.js';
import { HttpProtocolOptions } from '../../gen/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import type { Protocol, ResolverLoadBalancer } from '../../catalog/types.js';
import type {
  AggregateClusterIR,
  EdsClusterIR,
  PublicListenerIR,
  UpstreamIR,
  UpstreamTlsIR,
} from '../../snapshot/types.js';
import { packAny } from '../../proto-any.js';
import { TypeUrl } from '../types.js';
import { buildLoadAssignment } from './endpoints.js';
import {
  adsConfigSource,
  durationMs,
  sdsSecret,
  socketAddress,
  spec,
  type ResourceSpec,
} from './common.js';

/**
 * CDS, piece by piece (see pieces.ts): a sidecar's local app cluster, behind its public listener.
 */
export function localAppClusterSpec(pl: PublicListenerIR): ResourceSpec {
  const app = pl.localApp;
  const protocol = pl.protocol;
  return spec(TypeUrl.cluster, app.clusterName, { ...app, protocol }, () =>
    buildLocalAppCluster(app.clusterName, app.address, app.port, protocol),
  );
}

/** An upstream's clusters: its own or an aggregate's and its members, every route's for a router. */
export function upstreamClusterSpecs(u: UpstreamIR): ResourceSpec[] {
  return (u.routed?.clusters ?? [u.cluster]).flatMap((c) =>
    'aggregate' in c
      ? [aggregateClusterSpec(c), ...c.members.map(edsClusterSpec)]
      : [edsClusterSpec(c)],
  );
}

function aggregateClusterSpec(c: AggregateClusterIR): ResourceSpec {
  const input = {
    name: c.name,
    connectTimeoutMs: c.connectTimeoutMs,
    members: c.members.map((m) => m.name),
  };
  return spec(TypeUrl.cluster, c.name, input, () => buildAggregateCluster(c));
}

/**
 * Envoy's aggregate cluster: its members are tried in order, the next only for the share of load
 * the ones before cannot take for want of healthy hosts (Consul agent/xds clusters.go, failover).
 */
function buildAggregateCluster(c: AggregateClusterIR): Cluster {
  const config = AggregateClusterConfig.fromPartial({ clusters: c.members.map((m) => m.name) });
  return Cluster.fromPartial({
    name: c.name,
    altStatName: c.name,
    connectTimeout: durationMs(c.connectTimeoutMs),
    lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED,
    clusterDiscoveryType: {
      $case: 'clusterType',
      value: { name: 'envoy.clusters.aggregate', typedConfig: packAny(config) },
    },
  });
}

export function edsClusterSpec(c: EdsClusterIR): ResourceSpec {
  if (c.dns) return spec(TypeUrl.cluster, c.name, c, () => buildDnsCluster(c));
  // Endpoints are their own (EDS) resource: they do not belong in the cluster's key.
  const { endpoints: _endpoints, ...input } = c;
  return spec(TypeUrl.cluster, c.name, input, () => buildEdsCluster(c));
}

/** The app behind the sidecar, spoken to in its own protocol (HTTP/2 for http2 and grpc). */
function buildLocalAppCluster(
  name: string,
  address: string,
  port: number,
  protocol: Protocol,
): Cluster {
  return Cluster.fromPartial({
    name,
    clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.STATIC },
    connectTimeout: durationMs(5_000),
    typedExtensionProtocolOptions: httpProtocolOptions(protocol),
    loadAssignment: ClusterLoadAssignment.fromPartial({
      clusterName: name,
      endpoints: [
        {
          lbEndpoints: [
            {
              hostIdentifier: {
                $case: 'endpoint',
                value: { address: socketAddress(address, port) },
              },
            },
          ],
        },
      ],
    }),
  });
}

function buildEdsCluster(c: EdsClusterIR): Cluster {
  return Cluster.fromPartial({
    ...commonCluster(c),
    clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: adsConfigSource(), serviceName: c.name },
  });
}

/**
 * Endpoints that are hostnames (a peer gateway's WAN name): STRICT_DNS keeps every resolved host
 * of every name, unlike LOGICAL_DNS which takes one (issue 5: "a DNS cluster type that supports
 * several hosts"); the load assignment is inline because EDS cannot carry hostnames to resolve.
 */
function buildDnsCluster(c: EdsClusterIR): Cluster {
  return Cluster.fromPartial({
    ...commonCluster(c),
    clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.STRICT_DNS },
    dnsLookupFamily: Cluster_DnsLookupFamily.V4_ONLY,
    loadAssignment: buildLoadAssignment(c),
  });
}

function commonCluster(c: EdsClusterIR): Cluster {
  return Cluster.fromPartial({
    name: c.name,
    altStatName: c.name,
    connectTimeout: durationMs(c.connectTimeoutMs),
    lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
    ...(c.chain && chainLb(c.chain.loadBalancer)),
    outlierDetection: {},
    typedExtensionProtocolOptions: httpProtocolOptions(c.protocol),
    transportSocket: c.tls
      ? {
          name: 'envoy.transport_sockets.tls',
          configType: { $case: 'typedConfig', value: packAny(upstreamTls(c.tls)) },
        }
      : undefined,
  });
}

const lbPolicies = {
  round_robin: Cluster_LbPolicy.ROUND_ROBIN,
  least_request: Cluster_LbPolicy.LEAST_REQUEST,
  ring_hash: Cluster_LbPolicy.RING_HASH,
  maglev: Cluster_LbPolicy.MAGLEV,
  random: Cluster_LbPolicy.RANDOM,
} as const;

/**
 * A discovery-chain cluster: panic mode off, so Envoy never routes to hosts it knows are unhealthy
 * (an aggregate then moves on to the next target instead), and the resolver's load balancer.
 */
function chainLb(lb: ResolverLoadBalancer | undefined): Partial<Cluster> {
  const ring = lb?.ringHash;
  const least = lb?.leastRequest;
  return {
    commonLbConfig: { healthyPanicThreshold: { value: 0 } },
    ...(lb && { lbPolicy: lbPolicies[lb.policy] }),
    ...(ring && {
      lbConfig: {
        $case: 'ringHashLbConfig',
        value: {
          ...(ring.minimumRingSize ? { minimumRingSize: ring.minimumRingSize } : {}),
          ...(ring.maximumRingSize ? { maximumRingSize: ring.maximumRingSize } : {}),
        },
      },
    }),
    ...(least?.choiceCount && {
      lbConfig: { $case: 'leastRequestLbConfig', value: { choiceCount: least.choiceCount } },
    }),
  } as Partial<Cluster>;
}

/** HTTP/2 to the upstream for http2 and grpc (Envoy: explicit_http_config). */
function httpProtocolOptions(protocol: Protocol): Record<string, ReturnType<typeof packAny>> {
  if (protocol !== 'http2' && protocol !== 'grpc') return {};
  const options = HttpProtocolOptions.fromPartial({
    upstreamProtocolOptions: {
      $case: 'explicitHttpConfig',
      value: { protocolConfig: { $case: 'http2ProtocolOptions', value: {} } },
    },
  });
  return { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': packAny(options) };
}

/**
 * mTLS to the upstream: our leaf, the roots we trust for it, its SNI, and the exact SPIFFE IDs it
 * may present (docs/architecture.md §5 "Sidecar").
 */
function upstreamTls(t: UpstreamTlsIR): UpstreamTlsContext {
  return UpstreamTlsContext.fromPartial({
    sni: t.sni,
    commonTlsContext: {
      tlsParams: { tlsMinimumProtocolVersion: 3 /* TLSv1_2 */ },
      tlsCertificateSdsSecretConfigs: [sdsSecret(t.leafSecret)],
      validationContextType: {
        $case: 'combinedValidationContext',
        value: {
          defaultValidationContext: {
            matchTypedSubjectAltNames: t.spiffeIds.map((id) => ({
              sanType: SubjectAltNameMatcher_SanType.URI,
              matcher: { matchPattern: { $case: 'exact', value: id } },
            })),
          },
          validationContextSdsSecretConfig: sdsSecret(t.rootsSecret),
        },
      },
    },
  });
}
