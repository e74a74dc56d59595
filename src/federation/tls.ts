import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Leaf } from '../ca/index.js';
import { FederationServiceClient } from '../gen/isthmus/federation/v1/federation.js';

/** Largest federation message (a replicated state of thousands of config entries fits). */
export const maxFederationMessageBytes = 16 * 1024 * 1024;

export interface FederationDialTarget {
  /** `host:port` of a mesh gateway (never a server's own address). */
  readonly address: string;
  /** `server.<dc>.consul`: the SNI the gateway routes by, required as the server's DNS SAN. */
  readonly serverName: string;
  /**
   * The roots the server must chain to; `unverified` only for a Join, whose answer is
   * authenticated by the federation secret instead (before it the secondary knows no roots).
   */
  readonly trust: { readonly rootPems: readonly string[] } | 'unverified';
  /** Our federation leaf, presented as the client certificate. */
  readonly leaf?: Pick<Leaf, 'certPem' | 'keyPem'> | undefined;
}

/** A client of one federation server through a gateway; the caller closes it. */
export function dialFederation(target: FederationDialTarget): FederationServiceClient {
  const key = target.leaf ? Buffer.from(target.leaf.keyPem) : null;
  const cert = target.leaf ? Buffer.from(target.leaf.certPem) : null;
  const credentials =
    target.trust === 'unverified'
      ? grpc.credentials.createSsl(null, key, cert, {
          rejectUnauthorized: false,
          checkServerIdentity: () => undefined,
        })
      : grpc.credentials.createSsl(Buffer.from(target.trust.rootPems.join('\n')), key, cert, {
          checkServerIdentity: (_host, peer) => requireDnsSan(target.serverName, peer),
        });
  return new FederationServiceClient(target.address, credentials, {
    'grpc.ssl_target_name_override': target.serverName,
    'grpc.default_authority': target.serverName,
    'grpc.max_receive_message_length': maxFederationMessageBytes,
  });
}

/** An exact DNS SAN match, no wildcard and no CN fallback (as the peering dialer checks). */
function requireDnsSan(serverName: string, cert: PeerCertificate): Error | undefined {
  const sans = (cert.subjectaltname ?? '').split(', ');
  if (sans.some((san) => san.toLowerCase() === `dns:${serverName}`)) return undefined;
  const err = new Error(
    `the federation server's certificate does not name ${serverName} (it has: ${cert.subjectaltname || 'no SANs'})`,
  );
  return Object.assign(err, { reason: err.message, host: serverName, cert });
}

/**
 * The URI SANs of a call's client certificate, when the TLS layer verified it against the
 * server's trusted roots (grpc-js exposes no certificate it did not verify).
 */
export function verifiedClientUris(call: {
  getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } | null;
}): string[] {
  const raw = call.getAuthContext?.()?.sslPeerCertificate?.raw;
  if (!raw || raw.length === 0) return [];
  const cert = new X509Certificate(raw);
  const now = Date.now();
  if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) return [];
  return (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
}
