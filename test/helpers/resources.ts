/** Small, valid Envoy resources for xDS tests (ts-proto messages). */
import {
  Cluster,
  Cluster_DiscoveryType,
  Cluster_LbPolicy,
} from '../../src/gen/envoy/config/cluster/v3/cluster.js';
import { ClusterLoadAssignment } from '../../src/gen/envoy/config/endpoint/v3/endpoint.js';
import { Listener } from '../../src/gen/envoy/config/listener/v3/listener.js';
import { RouteConfiguration } from '../../src/gen/envoy/config/route/v3/route.js';
import { Secret } from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import { UpstreamTlsContext } from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { TcpProxy } from '../../src/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
import {
  HttpConnectionManager,
  HttpConnectionManager_CodecType,
} from '../../src/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { Router } from '../../src/gen/envoy/extensions/filters/http/router/v3/router.js';
import { ApiVersion } from '../../src/gen/envoy/config/core/v3/config_source.js';
import { packAny } from '../../src/proto-any.js';

const ads = {
  configSourceSpecifier: { $case: 'ads' as const, value: {} },
  resourceApiVersion: ApiVersion.V3,
};

export function edsCluster(
  name: string,
  opts: { secret?: string; timeoutSeconds?: number } = {},
): Cluster {
  return Cluster.fromPartial({
    name,
    clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: ads, serviceName: name },
    connectTimeout: { seconds: opts.timeoutSeconds ?? 5, nanos: 0 },
    lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
    ...(opts.secret
      ? {
          transportSocket: {
            name: 'tls',
            configType: {
              $case: 'typedConfig',
              value: packAny(
                UpstreamTlsContext.fromPartial({
                  commonTlsContext: {
                    tlsCertificateSdsSecretConfigs: [{ name: opts.secret, sdsConfig: ads }],
                  },
                  sni: name,
                }),
              ),
            },
          },
        }
      : {}),
  });
}

/**
 * One locality (weight 1, region r1 / zone z1) holding one endpoint per port: @grpc/grpc-js-xds
 * needs the locality weight and matches the locality its bootstrap names.
 */
export function endpoints(
  clusterName: string,
  ports: readonly number[],
  host = '127.0.0.1',
): ClusterLoadAssignment {
  return ClusterLoadAssignment.fromPartial({
    clusterName,
    endpoints: [
      {
        locality: { region: 'r1', zone: 'z1', subZone: '' },
        loadBalancingWeight: 1,
        lbEndpoints: ports.map((port) => ({
          hostIdentifier: {
            $case: 'endpoint' as const,
            value: {
              address: {
                address: {
                  $case: 'socketAddress' as const,
                  value: {
                    address: host,
                    portSpecifier: { $case: 'portValue' as const, value: port },
                  },
                },
              },
            },
          },
        })),
      },
    ],
  });
}

export function tcpListener(name: string, port: number, cluster: string): Listener {
  const tcp = TcpProxy.fromPartial({
    statPrefix: name,
    clusterSpecifier: { $case: 'cluster', value: cluster },
  });
  return Listener.fromPartial({
    name,
    address: {
      address: {
        $case: 'socketAddress',
        value: { address: '127.0.0.1', portSpecifier: { $case: 'portValue', value: port } },
      },
    },
    filterChains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.tcp_proxy',
            configType: { $case: 'typedConfig', value: packAny(tcp) },
          },
        ],
      },
    ],
  });
}

export function httpListener(name: string, port: number, routeName: string): Listener {
  const hcm = HttpConnectionManager.fromPartial({
    statPrefix: name,
    codecType: HttpConnectionManager_CodecType.AUTO,
    routeSpecifier: { $case: 'rds', value: { configSource: ads, routeConfigName: routeName } },
    httpFilters: [
      {
        name: 'envoy.filters.http.router',
        configType: { $case: 'typedConfig', value: packAny(Router.fromPartial({})) },
      },
    ],
  });
  return Listener.fromPartial({
    name,
    address: {
      address: {
        $case: 'socketAddress',
        value: { address: '127.0.0.1', portSpecifier: { $case: 'portValue', value: port } },
      },
    },
    filterChains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            configType: { $case: 'typedConfig', value: packAny(hcm) },
          },
        ],
      },
    ],
  });
}

export function route(
  name: string,
  cluster: string,
  domains: readonly string[] = ['*'],
): RouteConfiguration {
  return RouteConfiguration.fromPartial({
    name,
    virtualHosts: [
      {
        name: `${name}-vh`,
        domains: [...domains],
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

export function secret(name: string, marker = 'a'): Secret {
  return Secret.fromPartial({
    name,
    type: {
      $case: 'validationContext',
      value: {
        trustedCa: {
          specifier: {
            $case: 'inlineString',
            value: `-----BEGIN CERTIFICATE-----\n${marker}\n-----END CERTIFICATE-----\n`,
          },
        },
      },
    },
  });
}
