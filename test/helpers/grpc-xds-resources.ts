/**
 * Resources a proxyless gRPC client (`@grpc/grpc-js-xds`) accepts, following what its validators
 * check (build/src/xds-resource-type/*.js, gRFC A27/A28): an API listener whose
 * HttpConnectionManager gets its routes over ADS and ends with the router filter; EDS clusters over
 * ADS with ROUND_ROBIN; endpoints with a locality, a locality weight and IP addresses.
 */
import {
  Cluster,
  Cluster_DiscoveryType,
  Cluster_LbPolicy,
} from '../../src/gen/envoy/config/cluster/v3/cluster.js';
import { ClusterLoadAssignment } from '../../src/gen/envoy/config/endpoint/v3/endpoint.js';
import { Listener } from '../../src/gen/envoy/config/listener/v3/listener.js';
import { RouteConfiguration } from '../../src/gen/envoy/config/route/v3/route.js';
import { ApiVersion } from '../../src/gen/envoy/config/core/v3/config_source.js';
import { HttpConnectionManager } from '../../src/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { Router } from '../../src/gen/envoy/extensions/filters/http/router/v3/router.js';
import { packAny } from '../../src/proto-any.js';
import { validateMessage } from './pgv.js';

const ads = {
  configSourceSpecifier: { $case: 'ads' as const, value: {} },
  resourceApiVersion: ApiVersion.V3,
};

/**
 * The listener gRPC looks up by the target's name (`xds:///<name>`): an API listener, no address.
 */
export function grpcApiListener(name: string, routeConfigName: string): Listener {
  const hcm = HttpConnectionManager.fromPartial({
    statPrefix: name,
    routeSpecifier: { $case: 'rds', value: { configSource: ads, routeConfigName } },
    httpFilters: [
      {
        name: 'envoy.filters.http.router',
        configType: { $case: 'typedConfig', value: packAny(Router.fromPartial({})) },
      },
    ],
  });
  return Listener.fromPartial({ name, apiListener: { apiListener: packAny(hcm) } });
}

/** One virtual host for every authority, routing every path to `cluster`. */
export function grpcRoute(name: string, cluster: string): RouteConfiguration {
  return RouteConfiguration.fromPartial({
    name,
    virtualHosts: [
      {
        name: `${name}-vh`,
        domains: ['*'],
        routes: [
          {
            match: { pathSpecifier: { $case: 'prefix', value: '/' } },
            action: {
              $case: 'route',
              value: { clusterSpecifier: { $case: 'cluster', value: cluster } },
            },
          },
        ],
      },
    ],
  });
}

/**
 * An EDS cluster over ADS. `lbPolicy` defaults to ROUND_ROBIN, the only legacy `lb_policy` gRPC
 * supports besides RING_HASH; LEAST_REQUEST is valid Envoy config that gRPC rejects
 * ("unsupported lb_policy").
 */
export function grpcEdsCluster(
  name: string,
  opts: { serviceName?: string; lbPolicy?: Cluster_LbPolicy } = {},
): Cluster {
  return Cluster.fromPartial({
    name,
    clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: ads, serviceName: opts.serviceName ?? name },
    connectTimeout: { seconds: 1, nanos: 0 },
    lbPolicy: opts.lbPolicy ?? Cluster_LbPolicy.ROUND_ROBIN,
  });
}

type XdsResource = Cluster | ClusterLoadAssignment | Listener | RouteConfiguration;

const codecs = {
  'envoy.config.cluster.v3.Cluster': (m: XdsResource) => Cluster.encode(m as Cluster).finish(),
  'envoy.config.endpoint.v3.ClusterLoadAssignment': (m: XdsResource) =>
    ClusterLoadAssignment.encode(m as ClusterLoadAssignment).finish(),
  'envoy.config.listener.v3.Listener': (m: XdsResource) => Listener.encode(m as Listener).finish(),
  'envoy.config.route.v3.RouteConfiguration': (m: XdsResource) =>
    RouteConfiguration.encode(m as RouteConfiguration).finish(),
} as const;

/** Every Envoy validate.rules violation of the resources, as `<type>: <path>: <problem>`. */
export function pgvViolations(resources: readonly XdsResource[]): string[] {
  return resources.flatMap((r) => {
    const type = r.$type;
    if (!type || !(type in codecs)) return [`not an xDS resource: ${String(type)}`];
    return validateMessage(type, codecs[type](r));
  });
}
