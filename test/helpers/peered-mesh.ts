/**
 * Two in-process mesh servers peered over their real peering ports, the way a user does it: A
 * generates a token for `cluster-b`, B establishes with it as `cluster-a`, both wait for ACTIVE.
 */
import { startMeshServer, type MeshServer } from './mesh-server.js';
import { waitFor } from './wait.js';

export interface PeeredMeshes {
  readonly a: MeshServer;
  readonly b: MeshServer;
  close(): Promise<void>;
}

const active = (m: MeshServer, name: string) => async () => (await m.api<{ State: string }>('GET', `/v1/peering/${name}`)).body?.State === 'ACTIVE';

export async function startPeeredMeshes(flagsA: Record<string, string> = {}, flagsB: Record<string, string> = {}): Promise<PeeredMeshes> {
  const [a, b] = await Promise.all([startMeshServer({ datacenter: 'dc-a', ...flagsA }), startMeshServer({ datacenter: 'dc-b', ...flagsB })]);
  const close = async () => {
    await Promise.all([a.close(), b.close()]);
  };
  try {
    const token = await a.api<{ PeeringToken: string }>('POST', '/v1/peering/token', { PeerName: 'cluster-b' });
    if (token.status !== 200) throw new Error(`token: ${token.status} ${JSON.stringify(token.body)}`);
    const est = await b.api('POST', '/v1/peering/establish', { PeerName: 'cluster-a', PeeringToken: token.body.PeeringToken });
    if (est.status !== 200) throw new Error(`establish: ${est.status} ${JSON.stringify(est.body)}`);
    await waitFor(active(b, 'cluster-a'), { timeoutMs: 5_000, intervalMs: 20, what: 'B to be ACTIVE' });
    await waitFor(active(a, 'cluster-b'), { timeoutMs: 5_000, intervalMs: 20, what: 'A to be ACTIVE' });
    return { a, b, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** `exported-services` exporting each service to the given peers (A's names for them). */
export function exportEntry(services: Record<string, readonly string[]>) {
  return {
    Kind: 'exported-services',
    Name: 'default',
    Services: Object.entries(services).map(([Name, peers]) => ({ Name, Consumers: peers.map((Peer) => ({ Peer })) })),
  };
}
