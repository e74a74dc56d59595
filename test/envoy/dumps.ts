/**
 * Reading what an Envoy holds out of its `/config_dump`: the SDS secrets (leaf certificates and CA
 * bundles), the filter chains of a listener, and text searches over the whole dump (names and
 * content: a peer's trust domain or a root certificate must not be anywhere once it is gone).
 */
import { X509Certificate } from 'node:crypto';
import { type ConfigDump, dumpSection } from './harness.js';

export interface DumpSecret {
  readonly name: string;
  /** The leaf (first certificate of the chain) of a `tls_certificate` secret. */
  readonly leafPem?: string;
  /** The PEM bundle of a `validation_context` secret. */
  readonly trustedCaPem?: string;
}

interface RawSecret {
  name: string;
  secret?: {
    tls_certificate?: { certificate_chain?: { inline_string?: string } };
    validation_context?: { trusted_ca?: { inline_string?: string } };
  };
}

/** The active dynamic (SDS) secrets of a config dump. */
export function dumpSecrets(dump: ConfigDump): DumpSecret[] {
  const raw = (dumpSection(dump, 'SecretsConfigDump')?.dynamic_active_secrets ?? []) as RawSecret[];
  return raw.map((s) => {
    const chain = s.secret?.tls_certificate?.certificate_chain?.inline_string;
    const ca = s.secret?.validation_context?.trusted_ca?.inline_string;
    return {
      name: s.name,
      ...(chain ? { leafPem: firstPem(chain) } : {}),
      ...(ca ? { trustedCaPem: ca } : {}),
    };
  });
}

function firstPem(bundle: string): string {
  const end = '-----END CERTIFICATE-----';
  return bundle.slice(0, bundle.indexOf(end) + end.length);
}

/** Whether `leafPem` was signed by the root `rootPem`. */
export function signedBy(leafPem: string, rootPem: string): boolean {
  const leaf = new X509Certificate(leafPem);
  const root = new X509Certificate(rootPem);
  return leaf.checkIssued(root) && leaf.verify(root.publicKey);
}

/**
 * A fingerprint of a PEM certificate that survives JSON escaping: one full base64 line from the
 * middle of its body. Searching a dump's JSON text for it finds the certificate wherever it is
 * inlined (an SDS secret, a SPIFFE validator's trust bundle in a listener).
 */
export function pemMark(pem: string): string {
  const lines = pem
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('-----'));
  return lines[Math.floor(lines.length / 2) - 1] ?? lines[0]!;
}

export interface DumpFilterChain {
  readonly name?: string;
  readonly serverNames: readonly string[];
}

interface RawListener {
  name: string;
  active_state?: {
    listener?: {
      filter_chains?: { name?: string; filter_chain_match?: { server_names?: string[] } }[];
    };
  };
}

/** The filter chains of each active dynamic listener, by listener name. */
export function dumpFilterChains(dump: ConfigDump): Map<string, DumpFilterChain[]> {
  const raw = (dumpSection(dump, 'ListenersConfigDump')?.dynamic_listeners ?? []) as RawListener[];
  const out = new Map<string, DumpFilterChain[]>();
  for (const l of raw) {
    const chains = l.active_state?.listener?.filter_chains ?? [];
    out.set(
      l.name,
      chains.map((c) => ({
        ...(c.name ? { name: c.name } : {}),
        serverNames: c.filter_chain_match?.server_names ?? [],
      })),
    );
  }
  return out;
}

/** The dump as text, for "this string is nowhere in what Envoy holds" checks. */
export function dumpText(dump: ConfigDump): string {
  // Without what the bootstrap wrote: its xDS cluster holds the CA roots of the day it was written,
  // static by design (docs/architecture.md §1, "The xDS port"). What is left came over xDS.
  return JSON.stringify(dump, (key, value) =>
    key === 'bootstrap' || key === 'static_clusters' ? undefined : value,
  );
}

/** Serial numbers as Envoy prints them in `/certs`: lowercase hex without leading zeros. */
export function serialOf(pem: string): string {
  return new X509Certificate(pem).serialNumber.toLowerCase().replace(/^0+(?=.)/, '');
}

interface RawCertDetails {
  serial_number?: string;
}

/**
 * What Envoy's TLS contexts hold right now (`/certs`): the serial numbers of the certificates they
 * present (`cert_chain`) and of the CAs they trust (`ca_cert`). Contexts that present nothing are
 * left out: the only one is the bootstrap's TLS to the xDS server, whose roots are static
 * (docs/architecture.md §1, "The xDS port"); every mesh context presents a leaf.
 */
export async function envoyCerts(
  adminUrl: string,
): Promise<{ presented: string[]; trusted: string[] }> {
  const res = await fetch(`${adminUrl}/certs`);
  const body = (await res.json()) as {
    certificates?: { ca_cert?: RawCertDetails[]; cert_chain?: RawCertDetails[] }[];
  };
  const serials = (list: RawCertDetails[] | undefined) =>
    (list ?? []).map((c) => (c.serial_number ?? '').toLowerCase().replace(/^0+(?=.)/, ''));
  const contexts = (body.certificates ?? []).filter((c) => (c.cert_chain ?? []).length > 0);
  return {
    presented: [...new Set(contexts.flatMap((c) => serials(c.cert_chain)))],
    trusted: [...new Set(contexts.flatMap((c) => serials(c.ca_cert)))],
  };
}
