import type * as grpc from '@grpc/grpc-js';
import type { Leaf } from '../ca/index.js';
import { PeeringServiceClient } from '../gen/isthmus/peering/v1/peering.js';
import { dialerChannelOptions, dialerCredentials } from './stream/tls.js';

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
 * A client for one acceptor address, with the replication stream's TLS rules; the caller closes it.
 */
export function dialPeer(
  target: PeerDialTarget,
  options: Partial<grpc.ChannelOptions> = {},
): PeeringServiceClient {
  const credentials = dialerCredentials({
    caPems: target.caPems,
    serverName: target.serverName,
    certPem: target.leaf?.certPem,
    keyPem: target.leaf?.keyPem,
  });
  return new PeeringServiceClient(target.address, credentials, {
    ...dialerChannelOptions(target.serverName),
    ...options,
  });
}
