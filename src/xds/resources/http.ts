import {
  HttpConnectionManager,
  HttpConnectionManager_CodecType,
  HttpConnectionManager_ForwardClientCertDetails,
} from '../../gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { RouteConfiguration } from '../../gen/envoy/config/route/v3/route.js';
import { Router } from '../../gen/envoy/extensions/filters/http/router/v3/router.js';
import type { Filter } from '../../gen/envoy/config/listener/v3/listener_components.js';
import type { Protocol } from '../../catalog/types.js';
import { packAny } from '../any.js';
import { adsConfigSource, statPrefix } from './common.js';

export function isHttp(protocol: Protocol): boolean {
  return protocol !== 'tcp';
}

/** A route configuration sending every request to one cluster. */
export function singleClusterRoute(name: string, cluster: string): RouteConfiguration {
  return RouteConfiguration.fromPartial({
    name,
    validateClusters: true,
    virtualHosts: [
      {
        name,
        domains: ['*'],
        routes: [
          {
            match: { pathSpecifier: { $case: 'prefix', value: '/' } },
            action: { $case: 'route', value: { clusterSpecifier: { $case: 'cluster', value: cluster } } },
          },
        ],
      },
    ],
  });
}

/** An HTTP connection manager with routes from RDS, or inline to one cluster. */
export function httpConnectionManager(
  prefix: string,
  routes: { readonly rds: string } | { readonly inline: { readonly cluster: string } },
  protocol: Protocol,
  /** Set x-forwarded-client-cert from the verified client certificate (a gateway terminating mTLS). */
  xfcc = false,
): Filter {
  const hcm = HttpConnectionManager.fromPartial({
    ...(xfcc
      ? {
          forwardClientCertDetails: HttpConnectionManager_ForwardClientCertDetails.SANITIZE_SET,
          setCurrentClientCertDetails: { uri: true, cert: true, chain: false, dns: false, subject: true },
        }
      : {}),
    statPrefix: statPrefix(prefix),
    codecType: protocol === 'http' ? HttpConnectionManager_CodecType.AUTO : HttpConnectionManager_CodecType.HTTP2,
    routeSpecifier:
      'rds' in routes
        ? { $case: 'rds', value: { configSource: adsConfigSource(), routeConfigName: routes.rds } }
        : { $case: 'routeConfig', value: singleClusterRoute(prefix, routes.inline.cluster) },
    httpFilters: [{ name: 'envoy.filters.http.router', configType: { $case: 'typedConfig', value: packAny(Router.fromPartial({})) } }],
    tracing: undefined,
  });
  return { name: 'envoy.filters.network.http_connection_manager', configType: { $case: 'typedConfig', value: packAny(hcm) } } as Filter;
}
