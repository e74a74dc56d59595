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
 * True when `cert` is valid at `now` and signed by one of `rootPems` (isthmus CAs sign leaves
 * directly). The acceptor's server trusts every pinned dialer root, so the authority must check the
 * certificate against the roots of the one peering the Open claims.
 */
export function certificateChainsTo(
  cert: X509Certificate,
  rootPems: readonly string[],
  now = new Date(),
): boolean {
  if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) return false;
  return rootPems.some((pem) => {
    try {
      const root = new X509Certificate(pem);
      return cert.checkIssued(root) && cert.verify(root.publicKey);
    } catch {
      return false;
    }
  });
}

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
