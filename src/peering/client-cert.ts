import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { type Result, err, ok } from '../result.js';
import { certificateChainsTo } from './stream/tls.js';

/**
 * The peering port requests but does not require client certificates (ExchangeSecret comes before
 * the acceptor knows the dialer's roots), so the TLS layer's own verdict is not per peering. The
 * stream checks the client certificate itself against the roots pinned for the peering it opens.
 */
export type ClientCertCheck = Result<readonly string[], string>;

/**
 * Whether `peer` (grpc-js `call.getAuthContext().sslPeerCertificate`) is valid now and signed by
 * one of `rootPems`, directly or through `intermediates` (a WAN federation secondary's leaves are
 * signed by an intermediate, §6c). Its URI SANs are the value, for the caller to match the
 * expected trust domain.
 */
export function checkClientCertificate(
  peer: PeerCertificate | undefined,
  rootPems: readonly string[],
  now = Date.now(),
  intermediates: readonly X509Certificate[] = [],
): ClientCertCheck {
  if (!peer?.raw || peer.raw.length === 0) return err('no client certificate was presented');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(peer.raw);
  } catch {
    return err('the client certificate does not parse');
  }
  if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo))
    return err('the client certificate is expired or not yet valid');
  if (!certificateChainsTo(cert, rootPems, new Date(now), intermediates))
    return err('the client certificate does not chain to the roots pinned for this peering');
  const uris = (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
  return ok(uris);
}
