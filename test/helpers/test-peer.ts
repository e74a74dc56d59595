/**
 * A dialer end of the peering protocol driven by hand (ExchangeSecret over TLS with its own CA,
 * then the replication stream with its own client certificate), for tests and benchmarks that
 * must misbehave as a peer: flood heartbeats, send oversize messages.
 */
import type * as grpc from '@grpc/grpc-js';
import { createRoot, issueLeaf, loadSigner } from '../../src/ca/x509.js';
import {
  type PeeringServiceClient,
  ReplicationMessage,
} from '../../src/gen/isthmus/peering/v1/peering.js';
import { type PeerDialTarget, dialPeer } from '../../src/peering/dial.js';
import { type PeeringToken, parseToken } from '../../src/peering/token.js';
import { waitFor } from './wait.js';

const hour = 3_600_000;

export interface TestPeer {
  readonly token: PeeringToken;
  readonly target: PeerDialTarget;
  /** The open, accepted replication stream. */
  readonly stream: PeerStream;
  /** Opens another stream with the same secret (after `close`, a reconnect). */
  reopen(): Promise<TestPeer>;
  close(): void;
}

type PeerStream = grpc.ClientDuplexStream<ReplicationMessage, ReplicationMessage>;

/**
 * Generates a token for `peerName` on the server whose HTTP API is `api`, exchanges it as a
 * dialer of trust domain `trustDomain`, and opens an accepted stream.
 */
export async function dialAsTestPeer(
  api: (method: string, path: string, body?: unknown) => Promise<{ body: unknown }>,
  peerName: string,
  trustDomain = `${peerName}.test.consul`,
): Promise<TestPeer> {
  const res = (await api('POST', '/v1/peering/token', { PeerName: peerName })).body as {
    PeeringToken: string;
  };
  const parsed = parseToken(res.PeeringToken);
  if (!parsed.ok) throw new Error(parsed.error);
  const token = parsed.value;
  const root = await createRoot({
    rootUri: `spiffe://${trustDomain}`,
    name: trustDomain,
    now: Date.now(),
    validityMs: hour,
  });
  const leaf = await issueLeaf(await loadSigner('t', root.certPem, root.keyPem), {
    spiffeId: `spiffe://${trustDomain}/peering/server/dc/dc-test`,
    dnsSans: [`server.dc-test.peering.${trustDomain}`],
    now: Date.now(),
    ttlMs: hour,
  });
  const target = {
    address: token.ServerAddresses[0]!,
    caPems: token.CA,
    serverName: token.ServerName,
    leaf,
  };
  const client = dialPeer(target);
  const { streamSecret } = await new Promise<{ streamSecret: string }>((resolve, reject) =>
    client.exchangeSecret(
      {
        peerId: token.PeerID,
        establishmentSecret: token.EstablishmentSecret,
        dialerRootPems: [root.certPem],
        dialerTrustDomain: trustDomain,
        dialer: { partition: 'default', datacenter: 'dc-test' },
      },
      (err: grpc.ServiceError | null, r?: { streamSecret: string }) =>
        err ? reject(err) : resolve(r!),
    ),
  );
  client.close();
  // A new connection: the acceptor trusts the pinned roots from the next TLS handshake on.
  const open = async () => {
    const conn = dialPeer(target);
    const stream = conn.streamResources();
    const accepted = new Promise<boolean>((resolve) => {
      stream.once('data', () => resolve(true));
      stream.on('error', () => resolve(false));
    });
    stream.write(
      ReplicationMessage.fromPartial({
        payload: {
          $case: 'open',
          value: {
            peerId: token.PeerID,
            streamSecret,
            remote: { partition: 'default', datacenter: 'dc-test' },
          },
        },
      }),
    );
    if (await accepted) return { conn, stream };
    conn.close();
    return undefined;
  };
  const accepted = async (): Promise<TestPeer> => {
    const { conn, stream }: { conn: PeeringServiceClient; stream: PeerStream } = await waitFor(
      open,
      { timeoutMs: 10_000, intervalMs: 50, what: 'the test peer accepted' },
    );
    return {
      token,
      target,
      stream,
      reopen: accepted,
      close() {
        stream.end();
        conn.close();
      },
    };
  };
  return accepted();
}

export const heartbeat = ReplicationMessage.fromPartial({
  payload: { $case: 'heartbeat', value: {} },
});

/**
 * Writes `count` heartbeats as fast as the stream takes them (waiting for drain when its buffer
 * is full); resolves once all are written.
 */
export async function floodHeartbeats(stream: PeerStream, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (!stream.write(heartbeat))
      await new Promise<void>((resolve) => stream.once('drain', () => resolve()));
  }
}
