import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Leaf } from '../ca/index.js';
import { PeeringServiceClient } from '../gen/isthmus/peering/v1/peering.js';
import { requireDnsSan } from './stream/tls.js';

/** How a dialer reaches an acceptor's peering port. */
export interface PeerDialTarget {
  /** `host:port` */
  readonly address: string;
  /** The acceptor's CA roots: the only roots trusted for this connection. */
  readonly caPems: readonly string[];
  /** The acceptor's `server.<dc>.peering.<td>`: sent as SNI and required as a DNS SAN. */
  readonly serverName: string;
  /** Our peering identity's leaf, presented as the client certificate. */
  readonly leaf?: Pick<Leaf, 'certPem' | 'keyPem'> | undefined;
}

/**
 * Channel credentials that trust only `caPems` and accept the server only if its certificate names
 * `serverName` as a DNS SAN (the address the dialer connects to is usually an IP, so the default
 * hostname check cannot be used).
 */
export function peerChannelCredentials(target: Omit<PeerDialTarget, 'address'>): grpc.ChannelCredentials {
  const roots = Buffer.from(target.caPems.map((p) => p.trimEnd()).join('\n') + '\n');
  const key = target.leaf ? Buffer.from(target.leaf.keyPem) : null;
  const cert = target.leaf ? Buffer.from(target.leaf.certPem) : null;
  return grpc.credentials.createSsl(roots, key, cert, {
    checkServerIdentity: (_host: string, peer: PeerCertificate) => requireDnsSan(target.serverName, peer),
  });
}

/** A client for one acceptor address; the caller closes it. */
export function dialPeer(target: PeerDialTarget, options: Partial<grpc.ChannelOptions> = {}): PeeringServiceClient {
  return new PeeringServiceClient(target.address, peerChannelCredentials(target), {
    'grpc.ssl_target_name_override': target.serverName,
    'grpc.default_authority': target.serverName,
    ...options,
  });
}
