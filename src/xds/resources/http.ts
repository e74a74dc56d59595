import {
  HttpConnectionManager,
  HttpConnectionManager_CodecType,
  HttpConnectionManager_ForwardClientCertDetails,
  type HttpFilter,
} from '../../gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';
import { RouteConfiguration } from '../../gen/envoy/config/route/v3/route.js';
import { Router } from '../../gen/envoy/extensions/filters/http/router/v3/router.js';
import type { Filter } from '../../gen/envoy/config/listener/v3/listener_components.js';
import type { HashPolicy, Protocol } from '../../catalog/types.js';
import { buildHashPolicies } from './hash-policies.js';
import { packAny } from '../../proto-any.js';
import { adsConfigSource, durationMs, statPrefix } from './common.js';

export function isHttp(protocol: Protocol): boolean {
  return protocol !== 'tcp';
}

/** A route configuration sending every request to one cluster. */
export function singleClusterRoute(
  name: string,
  cluster: string,
  timeoutMs?: number,
  hashPolicies?: readonly HashPolicy[],
): RouteConfiguration {
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
            action: {
              $case: 'route',
              value: {
                clusterSpecifier: { $case: 'cluster', value: cluster },
                // A resolver's RequestTimeout (Consul sets the route's timeout from it).
                ...(timeoutMs ? { timeout: durationMs(timeoutMs) } : {}),
                ...(hashPolicies?.length ? { hashPolicy: buildHashPolicies(hashPolicies) } : {}),
              },
            },
          },
        ],
      },
    ],
  });
}

/**
 * How a connection manager treats `x-forwarded-client-cert`: a sidecar's public listener appends
 * the verified caller to what came in (APPEND_FORWARD, Consul's choice: the app sees who called,
 * and behind a gateway also who the gateway let in); a gateway terminating a peer's mTLS replaces
 * whatever the peer sent with the caller's URI (SANITIZE_SET), which the sidecar's RBAC trusts
 * only from our own gateway. Outbound listeners leave it alone.
 */
export type XfccMode = 'none' | 'append-forward' | 'sanitize-set';

export interface HttpConnectionManagerOptions {
  readonly xfcc?: XfccMode;
  /** HTTP filters before the router (the RBAC filter of a public listener). */
  readonly filters?: readonly HttpFilter[];
  /**
   * Normalize paths (RFC 3986: `.`/`..` segments, unreserved %-escapes) before the filters, so an
   * L7 intention on `/allowed/` cannot be walked around with `/allowed/../admin` (Consul normalizes
   * for the same reason).
   */
  readonly normalizePath?: boolean;
}

function xfccFields(mode: XfccMode): Partial<HttpConnectionManager> {
  switch (mode) {
    case 'none':
      return {};
    case 'append-forward':
      return {
        forwardClientCertDetails: HttpConnectionManager_ForwardClientCertDetails.APPEND_FORWARD,
        setCurrentClientCertDetails: {
          uri: true,
          cert: true,
          chain: true,
          dns: true,
          subject: true,
        },
      };
    case 'sanitize-set':
      // Only the URI: a subject may hold commas, and the sidecar reads the first element by them.
      return {
        forwardClientCertDetails: HttpConnectionManager_ForwardClientCertDetails.SANITIZE_SET,
        setCurrentClientCertDetails: {
          uri: true,
          cert: false,
          chain: false,
          dns: false,
          subject: false,
        },
      };
  }
}

/**
 * An HTTP connection manager with routes from RDS, or inline to one cluster. WebSocket upgrades
 * are proxied (Envoy answers an upgrade it was not told about with 403); HTTP/2 listeners take
 * extended CONNECT so WebSockets over HTTP/2 (RFC 8441) pass too.
 */
export function httpConnectionManager(
  prefix: string,
  routes: { readonly rds: string } | { readonly inline: { readonly cluster: string } },
  protocol: Protocol,
  opts: HttpConnectionManagerOptions = {},
): Filter {
  const router: HttpFilter = {
    name: 'envoy.filters.http.router',
    configType: { $case: 'typedConfig', value: packAny(Router.fromPartial({})) },
  } as HttpFilter;
  const hcm = HttpConnectionManager.fromPartial({
    ...xfccFields(opts.xfcc ?? 'none'),
    ...(opts.normalizePath && { normalizePath: true }),
    statPrefix: statPrefix(prefix),
    codecType:
      protocol === 'http'
        ? HttpConnectionManager_CodecType.AUTO
        : HttpConnectionManager_CodecType.HTTP2,
    ...(protocol === 'http' ? {} : { http2ProtocolOptions: { allowConnect: true } }),
    upgradeConfigs: [{ upgradeType: 'websocket' }],
    routeSpecifier:
      'rds' in routes
        ? { $case: 'rds', value: { configSource: adsConfigSource(), routeConfigName: routes.rds } }
        : { $case: 'routeConfig', value: singleClusterRoute(prefix, routes.inline.cluster) },
    httpFilters: [...(opts.filters ?? []), router],
    tracing: undefined,
  });
  return {
    name: 'envoy.filters.network.http_connection_manager',
    configType: { $case: 'typedConfig', value: packAny(hcm) },
  } as Filter;
}
