import type {
  HeaderMatcher,
  QueryParameterMatcher,
  Route,
  RouteMatch,
} from '../../gen/envoy/config/route/v3/route_components.js';
import { RouteConfiguration } from '../../gen/envoy/config/route/v3/route.js';
import {
  type HeaderValueOption,
  HeaderValueOption_HeaderAppendAction,
} from '../../gen/envoy/config/core/v3/base.js';
import type { StringMatcher } from '../../gen/envoy/type/matcher/v3/string.js';
import type { HeaderModifiers, RouteHttpMatch } from '../../catalog/types.js';
import type { RouteIR } from '../../snapshot/types.js';
import { durationMs } from './common.js';
import { buildHashPolicies } from './hash-policies.js';

/**
 * The route configuration of an upstream with a router or splitter (Consul agent/xds routes.go,
 * `makeUpstreamRouteForDiscoveryChain`): one virtual host named as the upstream, matching any
 * authority, its routes in the router's order, the catch-all last.
 */
export function buildChainRouteConfig(
  name: string,
  routes: readonly RouteIR[],
): RouteConfiguration {
  return RouteConfiguration.fromPartial({
    name,
    validateClusters: true,
    virtualHosts: [{ name, domains: ['*'], routes: routes.map(buildRoute) }],
  });
}

function buildRoute(r: RouteIR): Route {
  const match = buildMatch(r.match);
  const headers = {
    ...(r.requestHeaders && {
      requestHeadersToAdd: headersToAdd(r.requestHeaders),
      requestHeadersToRemove: [...r.requestHeaders.remove],
    }),
    ...(r.responseHeaders && {
      responseHeadersToAdd: headersToAdd(r.responseHeaders),
      responseHeadersToRemove: [...r.responseHeaders.remove],
    }),
  };
  const [only, ...more] = r.clusters;
  if (!only)
    // No target of this route is known yet: answer as Envoy does without healthy hosts.
    return {
      match,
      action: { $case: 'directResponse', value: { status: 503 } },
      ...headers,
    } as Route;
  const clusterSpecifier =
    more.length === 0
      ? { $case: 'cluster' as const, value: only.name }
      : {
          $case: 'weightedClusters' as const,
          value: {
            clusters: r.clusters.map((c) => ({
              name: c.name,
              weight: c.weight,
              ...(c.requestHeaders && {
                requestHeadersToAdd: headersToAdd(c.requestHeaders),
                requestHeadersToRemove: [...c.requestHeaders.remove],
              }),
              ...(c.responseHeaders && {
                responseHeadersToAdd: headersToAdd(c.responseHeaders),
                responseHeadersToRemove: [...c.responseHeaders.remove],
              }),
            })),
          },
        };
  return {
    match,
    action: {
      $case: 'route',
      value: {
        clusterSpecifier,
        ...(r.prefixRewrite ? { prefixRewrite: r.prefixRewrite } : {}),
        ...(r.timeoutMs ? { timeout: durationMs(r.timeoutMs) } : {}),
        ...(r.idleTimeoutMs ? { idleTimeout: durationMs(r.idleTimeoutMs) } : {}),
        ...(r.hashPolicies?.length ? { hashPolicy: buildHashPolicies(r.hashPolicies) } : {}),
        ...(r.retry && {
          retryPolicy: {
            retryOn: r.retry.retryOn,
            ...(r.retry.numRetries ? { numRetries: r.retry.numRetries } : {}),
            retriableStatusCodes: [...r.retry.retriableStatusCodes],
          },
        }),
      },
    },
    ...headers,
  } as Route;
}

/**
 * Consul's `makeRouteMatchForDiscoveryRoute`: path, then headers, methods as `:method`, query.
 * `CaseInsensitive` is Envoy's `case_sensitive: false`, which Envoy ignores for a regex, so a
 * case-insensitive `PathRegex` gets RE2's `(?i)` flag instead.
 */
function buildMatch(m: RouteHttpMatch | undefined): RouteMatch {
  const regex = m?.caseInsensitive ? `(?i)${m.pathRegex}` : m?.pathRegex;
  const pathSpecifier = m?.pathExact
    ? { $case: 'path' as const, value: m.pathExact }
    : m?.pathRegex
      ? { $case: 'safeRegex' as const, value: { regex } }
      : { $case: 'prefix' as const, value: m?.pathPrefix || '/' };
  const headers: HeaderMatcher[] = (m?.header ?? []).map((h) => ({
    name: h.name,
    invertMatch: h.invert,
    headerMatchSpecifier: h.present
      ? { $case: 'presentMatch', value: true }
      : { $case: 'stringMatch', value: stringMatch(h) },
  })) as HeaderMatcher[];
  if (m && m.methods.length > 0)
    headers.push({
      name: ':method',
      headerMatchSpecifier: {
        $case: 'stringMatch',
        value: { matchPattern: { $case: 'safeRegex', value: { regex: m.methods.join('|') } } },
      },
    } as HeaderMatcher);
  const queryParameters = (m?.queryParam ?? []).map((q) => ({
    name: q.name,
    queryParameterMatchSpecifier: q.present
      ? { $case: 'presentMatch', value: true }
      : { $case: 'stringMatch', value: stringMatch({ ...q, prefix: '', suffix: '' }) },
  })) as QueryParameterMatcher[];
  return {
    pathSpecifier,
    ...(m?.caseInsensitive ? { caseSensitive: false } : {}),
    headers,
    queryParameters,
  } as unknown as RouteMatch;
}

function stringMatch(x: {
  readonly exact: string;
  readonly prefix: string;
  readonly suffix: string;
  readonly regex: string;
}): StringMatcher {
  const matchPattern = x.exact
    ? { $case: 'exact' as const, value: x.exact }
    : x.prefix
      ? { $case: 'prefix' as const, value: x.prefix }
      : x.suffix
        ? { $case: 'suffix' as const, value: x.suffix }
        : { $case: 'safeRegex' as const, value: { regex: x.regex } };
  return { matchPattern } as StringMatcher;
}

/** `Add` appends to what is there, `Set` replaces it (Consul's mapping). */
function headersToAdd(h: HeaderModifiers): HeaderValueOption[] {
  const option = (key: string, value: string, action: HeaderValueOption_HeaderAppendAction) =>
    ({ header: { key, value }, appendAction: action }) as HeaderValueOption;
  return [
    ...Object.entries(h.add).map(([k, v]) =>
      option(k, v, HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD),
    ),
    ...Object.entries(h.set).map(([k, v]) =>
      option(k, v, HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD),
    ),
  ];
}
