import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { importBatchBytes, maxMessageBytes } from './messages.js';

/**
 * TLS for the peering stream: both ends authenticate (issue 4 §1). The dialer verifies the acceptor
 * with the acceptor's roots and its server name (`server.<dc>.peering.<td>`, required as a DNS
 * SAN); the acceptor asks for a client certificate and the StreamAuthority checks it against the
 * roots pinned for that peering.
 */

export interface DialerTlsOptions {
  /** The acceptor's CA roots (token `CA`, later its replicated trust bundle). */
  readonly caPems: readonly string[];
  /** The acceptor's peering server name (token `ServerName`). */
  readonly serverName: string;
  /**
   * The dialer's own certificate, chaining to the roots it handed over at ExchangeSecret (absent:
   * none is presented).
   */
  readonly certPem?: string | undefined;
  readonly keyPem?: string | undefined;
}

/**
 * Channel credentials that trust only `caPems` and accept only a certificate naming `serverName`
 * as a DNS SAN (the address dialed is usually an IP, so the default hostname check cannot serve).
 */
export function dialerCredentials(opts: DialerTlsOptions): grpc.ChannelCredentials {
  if (opts.caPems.length === 0)
    throw new Error('the acceptor has no CA roots: refusing to dial without verifying it');
  const key = opts.keyPem === undefined ? null : Buffer.from(opts.keyPem);
  const cert = opts.certPem === undefined ? null : Buffer.from(opts.certPem);
  return grpc.credentials.createSsl(Buffer.from(opts.caPems.join('\n')), key, cert, {
    checkServerIdentity: (_host, cert) => requireDnsSan(opts.serverName, cert),
  });
}

/** Channel options that make the TLS SNI, the identity check and `:authority` the server name. */
export function dialerChannelOptions(serverName: string): grpc.ChannelOptions {
  return {
    'grpc.ssl_target_name_override': serverName,
    'grpc.default_authority': serverName,
    'grpc.max_receive_message_length': maxMessageBytes,
    // HTTP/2's 64 KiB default window lets about 20 services in flight: a burst of replicated
    // services then trickles in one round trip (and one commit) at a time. A window the size of an
    // importer's batch lets a batch fill (issue 14). It bounds what is buffered, not a message.
    'grpc-node.flow_control_window': importBatchBytes,
  };
}

/**
 * An exact DNS SAN match: no wildcard, and no fallback to the subject CN (which Node's default
 * check would allow for a certificate without DNS SANs).
 */
export function requireDnsSan(serverName: string, cert: PeerCertificate): Error | undefined {
  const sans = (cert.subjectaltname ?? '').split(', ');
  if (sans.some((san) => san.toLowerCase() === `dns:${serverName.toLowerCase()}`)) return undefined;
  const err = new Error(
    `the peering server's certificate does not name ${serverName} as a DNS SAN (it has: ${cert.subjectaltname || 'no SANs'})`,
  );
  return Object.assign(err, { reason: err.message, host: serverName, cert });
}

/**
 * The metadata key a dialer sends the intermediates of its client certificate in (PEM, after the
 * leaf). grpc-js gives the acceptor only the leaf of the chain TLS verified, and a leaf of a WAN
 * federation secondary is signed by an intermediate (docs/architecture.md §6c), so the acceptor
 * needs them to check the leaf against one peering's roots. They are untrusted path hints: every
 * signature on the path is verified.
 */
export const peerChainHeader = 'isthmus-peer-chain-bin';

/** The certificates of a PEM bundle after the first (a leaf's intermediates). */
export function intermediatesOf(certPem: string | undefined): string[] {
  const blocks = certPem?.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  return blocks?.slice(1) ?? [];
}

/** The metadata a dialer opens its stream with: its leaf's intermediates, if it has any. */
export function dialerMetadata(certPem: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  const chain = intermediatesOf(certPem);
  if (chain.length > 0) metadata.set(peerChainHeader, Buffer.from(chain.join('\n')));
  return metadata;
}

/** The intermediates a dialer sent (`peerChainHeader`); those that do not parse are left out. */
export function peerIntermediatesOf(call: { metadata?: grpc.Metadata }): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const value of call.metadata?.get(peerChainHeader) ?? []) {
    const text = Buffer.isBuffer(value) ? value.toString('utf8') : value;
    for (const pem of text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ??
      []) {
      try {
        out.push(new X509Certificate(pem));
      } catch {
        // Not a certificate: no path goes through it.
      }
    }
  }
  return out;
}

/**
 * The client certificate of a server call, when the TLS layer verified it against the server's
 * client CAs (grpc-js exposes nothing for a connection without a verified certificate).
 */
export function peerCertificateOf(call: {
  getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } | null;
}): X509Certificate | undefined {
  const raw = call.getAuthContext?.()?.sslPeerCertificate?.raw;
  return raw ? new X509Certificate(raw) : undefined;
}

/**
 * True when `cert` is valid at `now` and chains to one of `rootPems`: signed by a root directly
 * (a primary datacenter's or an unfederated cluster's leaves), or through `intermediates` (a WAN
 * federation secondary's leaves, §6c), each valid now, a CA, and verified by its signature. The
 * acceptor's server trusts every pinned dialer root, so the authority must check the certificate
 * against the roots of the one peering the Open claims.
 */
export function certificateChainsTo(
  cert: X509Certificate,
  rootPems: readonly string[],
  now = new Date(),
  intermediates: readonly X509Certificate[] = [],
): boolean {
  const validNow = (c: X509Certificate) =>
    now >= new Date(c.validFrom) && now <= new Date(c.validTo);
  if (!validNow(cert)) return false;
  const roots: X509Certificate[] = [];
  for (const pem of rootPems) {
    try {
      roots.push(new X509Certificate(pem));
    } catch {
      // A pinned root that does not parse signs nothing.
    }
  }
  const signedBy = (c: X509Certificate, issuer: X509Certificate) =>
    c.checkIssued(issuer) && c.verify(issuer.publicKey);
  let current = cert;
  // Isthmus chains are at most leaf, intermediate, root; a few hops more cost nothing.
  for (let hop = 0; hop <= maxIntermediates; hop++) {
    if (roots.some((root) => signedBy(current, root))) return true;
    const next = intermediates.find((i) => i.ca && validNow(i) && signedBy(current, i));
    if (!next) return false;
    current = next;
  }
  return false;
}

const maxIntermediates = 4;

export interface PeeringServerTlsOptions {
  readonly certPem: string;
  readonly keyPem: string;
  /** Every dialer root pinned by any peering; empty means no client certificate verifies. */
  readonly clientCaPems: readonly string[];
}

/**
 * Server credentials for the peering port: the server certificate, and a client certificate
 * requested but not required (ExchangeSecret callers have none the acceptor knows yet). A client
 * certificate that does not verify against `clientCaPems` leaves the call without one, and the
 * authority refuses its Open. `update` swaps certificates or roots without a restart; a root that
 * is unpinned later still lets an open stream run (the lead ends it when it deletes the peering).
 */
export class PeeringServerCredentials extends grpc.ServerCredentials {
  constructor(opts: PeeringServerTlsOptions) {
    super({ requestCert: true, rejectUnauthorized: false }, contextOptions(opts));
  }

  update(opts: PeeringServerTlsOptions): void {
    this.updateSecureContextOptions(contextOptions(opts));
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

function contextOptions(opts: PeeringServerTlsOptions) {
  // Always an array: an undefined `ca` would make Node trust its public root store.
  return { cert: opts.certPem, key: opts.keyPem, ca: [...opts.clientCaPems] };
}
