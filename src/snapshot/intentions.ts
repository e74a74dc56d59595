import type { CatalogReader, IntentionSource } from '../catalog/types.js';
import type { PrincipalIR, RbacIR, RbacPolicyIR } from './types.js';

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
 * Intentions for a destination, most specific first (Consul precedence: an exact destination
 * beats `*`, an exact source beats `*`), as an Envoy RBAC: with the mesh default allow, a DENY
 * policy per deny intention that no more specific allow overrides; with default deny, the mirror.
 */
export function rbacForDestination(
  catalog: CatalogReader,
  destination: string,
  localTd: string,
  peerTrustDomain: (peer: string) => string | undefined = () => undefined,
): RbacIR {
  const ranked: RankedSource[] = [];
  for (const entry of catalog.configEntries('service-intentions')) {
    if (entry.name !== destination && entry.name !== '*') continue;
    const destRank = entry.name === '*' ? 0 : 2;
    for (const source of entry.sources)
      ranked.push({ source, precedence: destRank + (source.name === '*' ? 0 : 1) });
  }
  ranked.sort((a, b) => b.precedence - a.precedence);
  const defaultAllow =
    (catalog.configEntry('mesh', 'mesh')?.defaultIntentionAction ?? 'allow') === 'allow';
  const target = defaultAllow ? 'deny' : 'allow';
  const policies: RbacPolicyIR[] = [];
  const overriding: PrincipalIR[] = [];
  for (const { source } of ranked) {
    const p = sourcePrincipal(source, localTd, peerTrustDomain);
    if (!p) continue;
    if (source.action === target) {
      policies.push({
        name: `consul-intentions-layer4-${policies.length}`,
        principals: [p],
        notPrincipals: [...overriding],
      });
    } else overriding.push(p);
  }
  return { action: defaultAllow ? 'DENY' : 'ALLOW', policies };
}
