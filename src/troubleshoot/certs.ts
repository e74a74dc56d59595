import { X509Certificate } from 'node:crypto';

/** What a check needs of one certificate (the gatherer parses; checks stay pure). */
export interface CertFact {
  /** Where it comes from, as the operator names it (`local root`, `peer root`, `leaf`). */
  readonly label: string;
  /** The URI SAN (SPIFFE ID) or the subject when there is none. */
  readonly identity: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** Set when the PEM does not parse. */
  readonly error?: string | undefined;
  /** Leaf only: signed by one of the current CA roots. */
  readonly chainsToRoots?: boolean | undefined;
}

/**
 * Parses one PEM certificate; a PEM that does not parse gives a fact with `error`, never a throw.
 */
export function certFact(label: string, pem: string, roots?: readonly string[]): CertFact {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (err) {
    return {
      label,
      identity: '',
      notBefore: '',
      notAfter: '',
      error: `does not parse: ${(err as Error).message}`,
    };
  }
  const uri = (cert.subjectAltName ?? '').split(', ').find((s) => s.startsWith('URI:'));
  const fact: CertFact = {
    label,
    identity: uri ? uri.slice(4) : cert.subject.replace(/\n/g, ', '),
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
  };
  return roots ? { ...fact, chainsToRoots: roots.some((r) => issuedBy(cert, r)) } : fact;
}

function issuedBy(cert: X509Certificate, rootPem: string): boolean {
  try {
    const root = new X509Certificate(rootPem);
    return cert.checkIssued(root) && cert.verify(root.publicKey);
  } catch {
    return false;
  }
}

/** Why a certificate is not usable at `now`, or undefined when it is. */
export function certProblem(c: CertFact, now: number): string | undefined {
  if (c.error) return `${c.label} ${c.error}`;
  if (now < Date.parse(c.notBefore))
    return `${c.label} ${c.identity} is not valid before ${c.notBefore}`;
  if (now > Date.parse(c.notAfter)) return `${c.label} ${c.identity} expired at ${c.notAfter}`;
  if (c.chainsToRoots === false)
    return `${c.label} ${c.identity} is not signed by a current CA root`;
  return undefined;
}

/** The earliest expiry among usable certificates (for a ✓ detail). */
export function earliestExpiry(certs: readonly CertFact[]): string | undefined {
  const times = certs
    .filter((c) => !c.error)
    .map((c) => c.notAfter)
    .sort();
  return times[0];
}
