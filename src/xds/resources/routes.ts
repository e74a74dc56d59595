import type { UpstreamIR } from '../../snapshot/types.js';
import { TypeUrl } from '../types.js';
import { spec, type ResourceSpec } from './common.js';
import { singleClusterRoute } from './http.js';
import { buildChainRouteConfig } from './chain-routes.js';

/**
 * RDS: one route configuration per HTTP-family upstream; an upstream with a router or splitter gets
 * its routes.
 */
export function upstreamRouteSpecs(u: UpstreamIR): ResourceSpec[] {
  return u.routeName && u.routed
    ? [
        spec(TypeUrl.route, u.routeName, u.routed.routes, () =>
          buildChainRouteConfig(u.routeName!, u.routed!.routes),
        ),
      ]
    : u.routeName
      ? [
          spec(
            TypeUrl.route,
            u.routeName,
            {
              cluster: u.cluster.name,
              timeoutMs: u.requestTimeoutMs,
              hashPolicies: u.hashPolicies,
            },
            () =>
              singleClusterRoute(u.routeName!, u.cluster.name, u.requestTimeoutMs, u.hashPolicies),
          ),
        ]
      : [];
}
