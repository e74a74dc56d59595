/**
 * Two in-process mesh servers peered over their real peering ports, the way a user does it: A
 * generates a token for `cluster-b`, B establishes with it as `cluster-a`, both wait for ACTIVE.
 */
import { startMeshServer, type MeshNode, type MeshServer } from './mesh-server.js';
import { waitFor } from './wait.js';

export interface PeeredMeshes<N extends MeshNode = MeshServer> {
  readonly a: N;
  readonly b: N;
  close(): Promise<void>;
}

const active = (m: MeshNode, name: string) => async () =>
  (await m.api<{ State: string }>('GET', `/v1/peering/${name}`)).body?.State === 'ACTIVE';

/** In-process servers by default; pass `startMeshProcess` for real server processes. */
export async function startPeeredMeshes<N extends MeshNode = MeshServer>(
  flagsA: Record<string, string> = {},
  flagsB: Record<string, string> = {},
  start: (flags: Record<string, string>) => Promise<N> = startMeshServer as unknown as (
    flags: Record<string, string>,
  ) => Promise<N>,
): Promise<PeeredMeshes<N>> {
  const [a, b] = await Promise.all([
    start({ datacenter: 'dc-a', ...flagsA }),
    start({ datacenter: 'dc-b', ...flagsB }),
  ]);
  const close = async () => {
    await Promise.all([a.close(), b.close()]);
  };
  try {
    await peerClusters(a, b, { dialerName: 'cluster-b', acceptorName: 'cluster-a' });
    return { a, b, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Peers two running mesh nodes the way a user does it: the acceptor generates a token naming the
 * dialer `dialerName`, the dialer establishes with it naming the acceptor `acceptorName`, and both
 * sides wait for ACTIVE.
 */
export async function peerClusters(
  acceptor: MeshNode,
  dialer: MeshNode,
  names: { readonly dialerName: string; readonly acceptorName: string },
  timeoutMs = 5_000,
): Promise<void> {
  const token = await acceptor.api<{ PeeringToken: string }>('POST', '/v1/peering/token', {
    PeerName: names.dialerName,
  });
  if (token.status !== 200) throw new Error(`token: ${token.status} ${JSON.stringify(token.body)}`);
  const est = await dialer.api('POST', '/v1/peering/establish', {
    PeerName: names.acceptorName,
    PeeringToken: token.body.PeeringToken,
  });
  if (est.status !== 200) throw new Error(`establish: ${est.status} ${JSON.stringify(est.body)}`);
  await waitFor(active(dialer, names.acceptorName), {
    timeoutMs,
    intervalMs: 20,
    what: `the dialer's peering ${names.acceptorName} to be ACTIVE`,
  });
  await waitFor(active(acceptor, names.dialerName), {
    timeoutMs,
    intervalMs: 20,
    what: `the acceptor's peering ${names.dialerName} to be ACTIVE`,
  });
}

/** `exported-services` exporting each service to the given peers (A's names for them). */
export function exportEntry(services: Record<string, readonly string[]>) {
  return {
    Kind: 'exported-services',
    Name: 'default',
    Services: Object.entries(services).map(([Name, peers]) => ({
      Name,
      Consumers: peers.map((Peer) => ({ Peer })),
    })),
  };
}
