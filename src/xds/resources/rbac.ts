import { RBAC as NetworkRbac } from '../../gen/envoy/extensions/filters/network/rbac/v3/rbac.js';
import { RBAC as HttpRbac } from '../../gen/envoy/extensions/filters/http/rbac/v3/rbac.js';
import {
  RBAC_Action,
  type DeepPartial,
  type Permission,
  type Policy,
  type Principal,
  type RBAC as RbacRules,
} from '../../gen/envoy/config/rbac/v3/rbac.js';
import type { HeaderMatcher } from '../../gen/envoy/config/route/v3/route_components.js';
import type { StringMatcher } from '../../gen/envoy/type/matcher/v3/string.js';
import type { IntentionHeaderMatch, IntentionHttpMatch } from '../../catalog/types.js';
import type { PermissionIR, PrincipalIR, RbacIR } from '../../snapshot/types.js';
import { packAny } from '../../proto-any.js';
import type { Filter } from '../../gen/envoy/config/listener/v3/listener_components.js';
import type { HttpFilter } from '../../gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.js';

/** Where a listener reads the caller's identity: its TLS peer certificate, or (L7) also XFCC. */
type Layer = 'l4' | 'l7';

function authenticated(regex: string): Principal {
  return {
    identifier: {
      $case: 'authenticated',
      value: {
        principalName: {
          matchPattern: { $case: 'safeRegex', value: { regex } },
          ignoreCase: false,
        },
      },
    },
  };
}

/**
 * The first element of `x-forwarded-client-cert` (the one our gateway set, SANITIZE_SET) names a
 * URI matching `spiffeRegex`; what follows the URI is the rest of that element (`;Key=value`) or
 * the elements later hops appended (`,…`). Envoy's safe_regex matches the whole value, so the
 * pattern needs no anchors, and it is kept short: RE2 program size is limited by Envoy's runtime.
 */
export function xfccRegex(spiffeRegex: string): string {
  const id = spiffeRegex.replace(/^\^/, '').replace(/\$$/, '');
  return `[^,]+;URI=${id}(?:[;,].*)?`;
}

function principal(p: PrincipalIR, layer: Layer): Principal {
  if (layer === 'l4' || !p.viaGatewayRegex) return authenticated(p.spiffeRegex);
  const xfcc: Principal = {
    identifier: {
      $case: 'header',
      value: {
        name: 'x-forwarded-client-cert',
        headerMatchSpecifier: {
          $case: 'stringMatch',
          value: {
            matchPattern: { $case: 'safeRegex', value: { regex: xfccRegex(p.spiffeRegex) } },
            ignoreCase: false,
          },
        },
        invertMatch: false,
        treatMissingHeaderAsEmpty: false,
      },
    },
  };
  return {
    identifier: { $case: 'andIds', value: { ids: [authenticated(p.viaGatewayRegex), xfcc] } },
  };
}

function orOf(ps: readonly PrincipalIR[], layer: Layer): Principal {
  return ps.length === 1
    ? principal(ps[0]!, layer)
    : { identifier: { $case: 'orIds', value: { ids: ps.map((p) => principal(p, layer)) } } };
}

/** A source principal that no higher-precedence intention of the opposite action matches. */
function policyPrincipal(p: PrincipalIR, exclude: readonly PrincipalIR[], layer: Layer): Principal {
  if (exclude.length === 0) return principal(p, layer);
  return {
    identifier: {
      $case: 'andIds',
      value: {
        ids: [principal(p, layer), { identifier: { $case: 'notId', value: orOf(exclude, layer) } }],
      },
    },
  };
}

function stringMatch(pattern: StringMatcher['matchPattern']): DeepPartial<StringMatcher> {
  return { matchPattern: pattern, ignoreCase: false };
}

function headerRule(header: DeepPartial<HeaderMatcher>): Permission {
  return { rule: { $case: 'header', value: header } } as Permission;
}

function headerMatch(m: IntentionHeaderMatch): DeepPartial<HeaderMatcher> {
  const s = (pattern: StringMatcher['matchPattern']) =>
    ({ $case: 'stringMatch', value: stringMatch(pattern) }) as const;
  const specifier =
    m.exact !== undefined
      ? s({ $case: 'exact', value: m.exact })
      : m.regex !== undefined
        ? s({ $case: 'safeRegex', value: { regex: m.regex } })
        : m.prefix !== undefined
          ? s({ $case: 'prefix', value: m.prefix })
          : m.suffix !== undefined
            ? s({ $case: 'suffix', value: m.suffix })
            : ({ $case: 'presentMatch', value: true } as const);
  return { name: m.name, headerMatchSpecifier: specifier, invertMatch: m.invert };
}

function andRules(rules: Permission[]): Permission {
  if (rules.length === 0) return { rule: { $case: 'any', value: true } };
  if (rules.length === 1) return rules[0]!;
  return { rule: { $case: 'andRules', value: { rules } } };
}

/** An intention's HTTP match as one Envoy permission: path, headers and method all together. */
function httpMatchRule(m: IntentionHttpMatch): Permission {
  const parts: Permission[] = [];
  const path: StringMatcher['matchPattern'] | undefined =
    m.pathExact !== undefined
      ? { $case: 'exact', value: m.pathExact }
      : m.pathPrefix !== undefined
        ? { $case: 'prefix', value: m.pathPrefix }
        : m.pathRegex !== undefined
          ? { $case: 'safeRegex', value: { regex: m.pathRegex } }
          : undefined;
  if (path)
    parts.push({
      rule: {
        $case: 'urlPath',
        value: { rule: { $case: 'path', value: stringMatch(path) } },
      },
    } as Permission);
  for (const h of m.header) parts.push(headerRule(headerMatch(h)));
  // Methods are validated tokens, so joining them is a safe RE2 alternation (Consul does this).
  if (m.methods.length > 0)
    parts.push(
      headerRule({
        name: ':method',
        headerMatchSpecifier: {
          $case: 'stringMatch',
          value: stringMatch({ $case: 'safeRegex', value: { regex: m.methods.join('|') } }),
        },
      }),
    );
  return andRules(parts);
}

function permissionRule(p: PermissionIR): Permission {
  const nots: Permission[] = p.notMatches.map((m) => ({
    rule: { $case: 'notRule', value: httpMatchRule(m) },
  }));
  return andRules([httpMatchRule(p.match), ...nots]);
}

function rules(rbac: RbacIR, layer: Layer): DeepPartial<RbacRules> {
  const policies: Record<string, DeepPartial<Policy>> = {};
  for (const p of rbac.policies) {
    policies[p.name] = {
      permissions: p.permissions
        ? p.permissions.map(permissionRule)
        : [{ rule: { $case: 'any', value: true } }],
      principals: p.principals.map((x) => policyPrincipal(x, p.notPrincipals, layer)),
    };
  }
  return { action: rbac.action === 'ALLOW' ? RBAC_Action.ALLOW : RBAC_Action.DENY, policies };
}

/**
 * The network RBAC filter enforcing intentions on a TCP public listener (L4, by client SPIFFE ID).
 */
export function rbacFilter(rbac: RbacIR): Filter {
  const config = NetworkRbac.fromPartial({ statPrefix: 'connect_authz', rules: rules(rbac, 'l4') });
  return {
    name: 'envoy.filters.network.rbac',
    configType: { $case: 'typedConfig', value: packAny(config) },
  } as Filter;
}

/**
 * The HTTP RBAC filter enforcing intentions on an HTTP-family public listener: a denied request
 * gets 403 (gRPC: PERMISSION_DENIED) from the sidecar and never reaches the app, where the
 * network filter would reset the connection and the caller would see a 503. Peer sources match
 * through the XFCC our gateway set (see `PrincipalIR.viaGatewayRegex`).
 */
export function httpRbacFilter(rbac: RbacIR): HttpFilter {
  const config = HttpRbac.fromPartial({ rules: rules(rbac, 'l7') });
  return {
    name: 'envoy.filters.http.rbac',
    configType: { $case: 'typedConfig', value: packAny(config) },
  } as HttpFilter;
}
