import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate } from 'node:crypto';
import type { FieldError } from '../problems.js';
import type { Peering } from './types.js';

/**
 * A peer is held to its word (issue 18; docs/architecture.md §6 "Claims"): the trust domain it
 * claims must be the one its roots certify (each root's `spiffe://<td>` URI SAN, the form
 * `rootSpiffeId` gives our own roots), and must be neither ours nor another live peering's, or
 * the peer could have our proxies trust its CA for identities that are not its own. Consul checks
 * the same on its side: a peer's bundle is keyed by the trust domain it claims and SPIFFE
 * validation trusts it for exactly that domain.
 */

/** A SPIFFE trust domain name: lowercase letters, digits, ".", "-", "_" (SPIFFE-ID spec §2.1). */
export const trustDomainPattern = /^[a-z0-9._-]{1,255}$/;

/** Who else holds which trust domain, for the checks that a claim is the peer's own. */
export interface ClaimContext {
  /** This cluster's trust domain. */
  readonly ownTrustDomain: string;
  /** Every peering of this cluster (the one being checked included: it is skipped by name). */
  readonly peerings: readonly Peering[];
  /** Our local name of the peering the claim is made on ('' when it has none yet). */
  readonly peeringName: string;
}

/**
 * The trust domains of a certificate's `spiffe://` URI SANs, read from its SAN extension (Node's
 * display string can be made to show a URI SAN inside another name); undefined when it does not
 * parse.
 */
export function spiffeTrustDomainsOf(pem: string): string[] | undefined {
  let uris: string[];
  try {
    new X509Certificate(pem);
    const san = new x509.X509Certificate(pem).getExtension(x509.SubjectAlternativeNameExtension);
    uris = (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
  } catch {
    return undefined;
  }
  return uris
    .map((uri) => /^spiffe:\/\/([^/]*)/.exec(uri)?.[1])
    .filter((td): td is string => td !== undefined);
}

/**
 * Every root in `pems` must certify exactly `td`: one `spiffe://<td>` URI SAN and no other trust
 * domain. Roots that do not parse are left to the caller's PEM check.
 */
export function rootsCertify(td: string, pems: readonly string[], field: string): FieldError[] {
  const problems: FieldError[] = [];
  pems.forEach((pem, i) => {
    const domains = spiffeTrustDomainsOf(pem);
    if (domains === undefined) return;
    const f = `${field}[${i}]`;
    if (domains.length === 0)
      problems.push({ field: f, problem: `certifies no trust domain (no spiffe:// URI SAN)` });
    else if (domains.some((d) => d !== td))
      problems.push({
        field: f,
        problem: `certifies ${domains.map((d) => `spiffe://${d}`).join(', ')}, not the claimed trust domain ${td}`,
      });
  });
  return problems;
}

/**
 * A claimed trust domain must be well formed, not ours, and not held by another live peering,
 * unless the claim is that same peer's: every root claimed is one of that peering's roots, which
 * only the holder of that CA's key can make good on over TLS (two peerings between the same two
 * clusters stay possible). A self-made root that merely carries another peer's trust domain is
 * refused.
 */
export function trustDomainProblems(
  td: string,
  field: string,
  ctx: ClaimContext,
  roots: readonly string[],
): FieldError[] {
  if (td === '') return [{ field, problem: 'missing' }];
  if (!trustDomainPattern.test(td))
    return [
      {
        field,
        problem: `${JSON.stringify(td.slice(0, 64))} is not a trust domain (1-255 lowercase letters, digits, ".", "-" or "_")`,
      },
    ];
  if (td === ctx.ownTrustDomain)
    return [{ field, problem: `${td} is this cluster's own trust domain` }];
  const holder = trustDomainHolder(td, ctx);
  if (holder && !everyRootAmong(roots, holder.peerCaPems))
    return [
      {
        field,
        problem: `${td} is the trust domain of peering ${JSON.stringify(holder.name)}, whose roots differ`,
      },
    ];
  return [];
}

/** The other live peering that holds `td`, if any. */
export function trustDomainHolder(td: string, ctx: ClaimContext): Peering | undefined {
  return ctx.peerings.find(
    (p) => p.name !== ctx.peeringName && isLive(p) && p.peerTrustDomain === td,
  );
}

function everyRootAmong(claimed: readonly string[], held: readonly string[]): boolean {
  const heldPrints = new Set(held.map(fingerprintOf));
  return claimed.length > 0 && claimed.every((pem) => heldPrints.has(fingerprintOf(pem)));
}

function fingerprintOf(pem: string): string {
  try {
    return new X509Certificate(pem).fingerprint256;
  } catch {
    return pem.trim();
  }
}

/** A peering whose peer still holds its trust domain (deleted and terminated ones let it go). */
function isLive(p: Peering): boolean {
  return p.state !== 'DELETING' && p.state !== 'TERMINATED';
}

/** What a user does about a refused trust-domain claim (the troubleshoot fix and error hint). */
export const trustDomainFix =
  "the peer's CA roots must carry the URI SAN spiffe://<its trust domain>, and that trust domain must differ from this cluster's and every other peer's: " +
  'if the peer is really another cluster, fix its CA (or delete the peering that holds that trust domain); if its CA was replaced, delete this peering and establish again with a new token';
