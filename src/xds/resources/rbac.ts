import { RBAC as NetworkRbac } from '../../gen/envoy/extensions/filters/network/rbac/v3/rbac.js';
import { RBAC_Action, type Principal } from '../../gen/envoy/config/rbac/v3/rbac.js';
import type { PrincipalIR, RbacIR } from '../../snapshot/types.js';
import { packAny } from '../any.js';
import type { Filter } from '../../gen/envoy/config/listener/v3/listener_components.js';

function principal(p: PrincipalIR): Principal {
  return {
    identifier: {
      $case: 'authenticated',
      value: { principalName: { matchPattern: { $case: 'safeRegex', value: { regex: p.spiffeRegex } }, ignoreCase: false } },
    },
  };
}

function orOf(ps: readonly PrincipalIR[]): Principal {
  return ps.length === 1 ? principal(ps[0]!) : { identifier: { $case: 'orIds', value: { ids: ps.map(principal) } } };
}

/** A source principal that no higher-precedence intention of the opposite action matches. */
function policyPrincipal(p: PrincipalIR, exclude: readonly PrincipalIR[]): Principal {
  if (exclude.length === 0) return principal(p);
  return { identifier: { $case: 'andIds', value: { ids: [principal(p), { identifier: { $case: 'notId', value: orOf(exclude) } }] } } };
}

/** The network RBAC filter enforcing intentions on the public listener (L4, by client SPIFFE ID). */
export function rbacFilter(rbac: RbacIR): Filter {
  const policies: Record<string, ReturnType<typeof buildPolicy>> = {};
  for (const p of rbac.policies) policies[p.name] = buildPolicy(p.principals, p.notPrincipals);
  const config = NetworkRbac.fromPartial({
    statPrefix: 'connect_authz',
    rules: { action: rbac.action === 'ALLOW' ? RBAC_Action.ALLOW : RBAC_Action.DENY, policies },
  });
  return { name: 'envoy.filters.network.rbac', configType: { $case: 'typedConfig', value: packAny(config) } } as Filter;
}

function buildPolicy(principals: readonly PrincipalIR[], notPrincipals: readonly PrincipalIR[]) {
  return {
    permissions: [{ rule: { $case: 'any' as const, value: true } }],
    principals: principals.map((p) => policyPrincipal(p, notPrincipals)),
  };
}
