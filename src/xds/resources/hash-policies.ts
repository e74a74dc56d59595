import type { RouteAction_HashPolicy } from '../../gen/envoy/config/route/v3/route_components.js';
import type { HashPolicy } from '../../catalog/types.js';
import { durationMs } from './common.js';

/**
 * A resolver's `LoadBalancer.HashPolicies` as the route action's `hash_policy` (Consul agent/xds
 * routes.go `injectLBToRouteAction`): what a ring_hash or maglev cluster hashes to pick a host.
 * A cookie with a TTL is set by Envoy when the request has none; a session cookie is a zero TTL.
 */
export function buildHashPolicies(policies: readonly HashPolicy[]): RouteAction_HashPolicy[] {
  return policies.map((h) => {
    const terminal = h.terminal;
    if (h.sourceIp)
      return {
        policySpecifier: { $case: 'connectionProperties', value: { sourceIp: true } },
        terminal,
      } as RouteAction_HashPolicy;
    const c = h.cookieConfig;
    const ttl = c?.session ? durationMs(0) : c?.ttlMs ? durationMs(c.ttlMs) : undefined;
    const policySpecifier =
      h.field === 'header'
        ? { $case: 'header', value: { headerName: h.fieldValue } }
        : h.field === 'cookie'
          ? {
              $case: 'cookie',
              value: { name: h.fieldValue, path: c?.path ?? '', ...(ttl ? { ttl } : {}) },
            }
          : { $case: 'queryParameter', value: { name: h.fieldValue } };
    return { policySpecifier, terminal } as RouteAction_HashPolicy;
  });
}
