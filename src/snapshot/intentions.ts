import type { CatalogReader, IntentionPermission, IntentionSource } from '../catalog/types.js';
import type { PermissionIR, PrincipalIR, RbacIR, RbacPolicyIR } from './types.js';

interface RankedSource {
  readonly source: IntentionSource;
  readonly precedence: number;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The URI SAN pattern of an intention source. Peer sources match the peer's trust domain and any
 * datacenter (docs/architecture.md §5 "Intentions → RBAC"); `peerTrustDomain` resolves a peer name
 * (undefined: unknown yet).
 */
export function sourcePrincipal(
  source: IntentionSource,
  localTd: string,
  peerTrustDomain: (peer: string) => string | undefined,
): PrincipalIR | undefined {
  const td = source.peer ? peerTrustDomain(source.peer) : localTd;
  if (!td) return undefined;
  const ap =
    source.partition && source.partition !== 'default'
      ? `/ap/${escapeRegex(source.partition)}`
      : '';
  const ns = source.namespace && source.namespace !== '*' ? escapeRegex(source.namespace) : '[^/]+';
  const svc = source.name === '*' ? '[^/]+' : escapeRegex(source.name);
  const spiffeRegex = `^spiffe://${escapeRegex(td)}${ap}/ns/${ns}/dc/[^/]+/svc/${svc}$`;
  if (!source.peer) return { spiffeRegex };
  return {
    spiffeRegex,
    viaGatewayRegex: `^spiffe://${escapeRegex(localTd)}/gateway/mesh/dc/[^/]+$`,
  };
}

/**
 * Intentions for a destination as an Envoy RBAC, as Consul builds it (agent/xds/rbac.go
 * `makeRBACRules`; docs/architecture.md §5 "Intentions → RBAC"). Sources are ranked most specific
 * first (an exact destination beats `*`, an exact source beats `*`), and a source named twice
 * keeps its most specific intention. With the mesh default allow the RBAC denies: a DENY policy
 * per deny intention, minus the more specific sources that override it; with default deny, the
 * mirror. An L7 source (`Permissions`, HTTP-family listeners only) overrides every less specific
 * source and gets a policy of its own holding the permissions whose action is not the default,
 * each minus the permissions before it (first match wins); requests no permission matches get
 * the default. On a TCP listener an L7 source counts as deny, as in Consul.
 */
export function rbacForDestination(
  catalog: CatalogReader,
  destination: string,
  localTd: string,
  peerTrustDomain: (peer: string) => string | undefined = () => undefined,
  http = false,
): RbacIR {
  const defaultAllow =
    (catalog.configEntry('mesh', 'mesh')?.defaultIntentionAction ?? 'allow') === 'allow';
  const target = defaultAllow ? 'deny' : 'allow';
  const policies: RbacPolicyIR[] = [];
  const overriding: PrincipalIR[] = [];
  for (const source of rankedSources(catalog, destination)) {
    const p = sourcePrincipal(source, localTd, peerTrustDomain);
    if (!p) continue;
    if (source.permissions && http) {
      const permissions = permissionsFor(source.permissions, target);
      if (permissions.length > 0)
        policies.push({
          name: `consul-intentions-layer7-${policies.length}`,
          principals: [p],
          notPrincipals: [...overriding],
          permissions,
        });
      overriding.push(p);
    } else if ((source.action ?? 'deny') === target) {
      policies.push({
        name: `consul-intentions-layer4-${policies.length}`,
        principals: [p],
        notPrincipals: [...overriding],
      });
    } else overriding.push(p);
  }
  return { action: defaultAllow ? 'DENY' : 'ALLOW', policies };
}

/** The sources of the destination's and `*`'s entries, most specific first, each source once. */
function rankedSources(catalog: CatalogReader, destination: string): IntentionSource[] {
  const ranked: RankedSource[] = [];
  for (const entry of catalog.configEntries('service-intentions')) {
    if (entry.name !== destination && entry.name !== '*') continue;
    const destRank = entry.name === '*' ? 0 : 2;
    for (const source of entry.sources)
      ranked.push({ source, precedence: destRank + (source.name === '*' ? 0 : 1) });
  }
  ranked.sort((a, b) => b.precedence - a.precedence);
  const seen = new Set<string>();
  const out: IntentionSource[] = [];
  for (const { source } of ranked) {
    const key = JSON.stringify([source.peer, source.partition, source.namespace, source.name]);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(source);
  }
  return out;
}

/**
 * The permissions that change a request's verdict from the default (action `target`), each minus
 * every permission before it (Consul's `removePermissionPrecedence`).
 */
function permissionsFor(
  permissions: readonly IntentionPermission[],
  target: 'allow' | 'deny',
): PermissionIR[] {
  const out: PermissionIR[] = [];
  permissions.forEach((perm, i) => {
    if (perm.action !== target) return;
    out.push({ match: perm.http, notMatches: permissions.slice(0, i).map((x) => x.http) });
  });
  return out;
}

/** What the intentions decide for one source calling one destination (the UI's topology edges). */
export interface IntentionVerdict {
  /** `l7`: an L7 intention decides per request (its permissions). */
  readonly action: 'allow' | 'deny' | 'l7';
  /** The intention that decides, as `source → destination`; absent: the mesh default decides. */
  readonly intention?: string | undefined;
}

/**
 * The verdict for `source` (a local service, or one of `source.peer`) calling `destination`, by the
 * same precedence `rbacForDestination` compiles into RBAC: the most specific matching source wins,
 * and with none the mesh's `defaultIntentionAction` (allow when there is no mesh entry).
 */
export function intentionVerdict(
  catalog: CatalogReader,
  destination: string,
  source: { readonly name: string; readonly peer: string },
): IntentionVerdict {
  for (const s of rankedSources(catalog, destination)) {
    if (s.peer !== source.peer || (s.name !== '*' && s.name !== source.name)) continue;
    const from = s.peer ? `${s.name} (peer ${s.peer})` : s.name;
    const intention = `${from} → ${explicitDestination(catalog, destination, s)}`;
    return { action: s.permissions ? 'l7' : (s.action ?? 'deny'), intention };
  }
  return { action: catalog.configEntry('mesh', 'mesh')?.defaultIntentionAction ?? 'allow' };
}

/** `destination`, or `*` when the source came from the wildcard entry. */
function explicitDestination(
  catalog: CatalogReader,
  destination: string,
  source: IntentionSource,
): string {
  const own = catalog.configEntry('service-intentions', destination);
  return own?.sources.includes(source) ? destination : '*';
}
