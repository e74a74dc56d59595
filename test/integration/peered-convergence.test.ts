/**
 * Convergence of peer-derived proxy config (issue 5): a peer CA rotation reaches the importing
 * sidecar's `roots:peer:<peer>` secret in each phase (B sees the trust-both phase), with SDS-only
 * pushes; a peer instance change updates only the affected endpoints; deleting the peering leaves
 * no peer-derived resource on any proxy of either side. Deadlines are generous: how fast changes
 * converge is a benchmark's figure, not a test's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerBundleSecretName, peeredUpstreamClusterName } from '../../src/mesh/names.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';
import type { MeshServer } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes, type PeeredMeshes } from '../helpers/peered-mesh.js';
import { acceptedTrustDomains } from '../helpers/pushed-tls.js';

type Json = any;
const phaseMs = 1500;
/** How long a change may take to reach a proxy on a loaded machine (figures: bench/, not tests). */
const convergeMs = 10_000;

let meshes: PeeredMeshes;
let a: MeshServer;
let b: MeshServer;
let tdA: string;
let webB: EnvoyLike;
let localB: EnvoyLike;
let gwB: EnvoyLike;
let apiA: EnvoyLike;
let gwA: EnvoyLike;

const apiCluster = () => peeredUpstreamClusterName(tdA, 'cluster-a', { name: 'api' });
const rootsOf = (e: EnvoyLike, secret: string): string[] => {
  const text = e.json(TypeUrl.secret, secret) || '';
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g)].map((m) =>
    m[0].replace(/\\n/g, '\n').trim(),
  );
};
const rootsOfA = async (): Promise<string[]> =>
  (
    (await a.api<{ Roots: { RootCert: string }[] }>('GET', '/v1/connect/ca/roots')).body?.Roots ??
    []
  ).map((r) => r.RootCert.trim());
function endpointsOf(e: EnvoyLike, cluster: string): string[] {
  const cla: Json = JSON.parse(e.json(TypeUrl.endpoint, cluster) || 'null');
  return (cla?.endpoints ?? []).flatMap((l: Json) =>
    l.lbEndpoints.map(
      (lb: Json) =>
        `${lb.endpoint.address.socketAddress.address}:${lb.endpoint.address.socketAddress.portValue}`,
    ),
  );
}
function withSidecar(name: string, port: number, upstreams: unknown[] = [], address = '127.0.0.1') {
  return {
    ID: name,
    Name: name,
    Address: address,
    Port: port,
    Check: { TTL: '600s', Status: 'passing' },
    Connect: { SidecarService: { Proxy: { Upstreams: upstreams } } },
  };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  meshes = await startPeeredMeshes({ caRotationPhaseMs: String(phaseMs) });
  ({ a, b } = meshes);
  tdA = a.server.ca.trustDomain;
  await a.register(withSidecar('api', 9090));
  await a.register({
    ID: 'gw-1',
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Address: '127.0.0.1',
    Port: 8443,
    TaggedAddresses: {
      lan: { Address: '127.0.0.1', Port: 8443 },
      wan: { Address: '203.0.113.7', Port: 443 },
    },
  });
  await a.putConfig(exportEntry({ api: ['cluster-b'] }));
  await b.register(
    withSidecar('web', 8080, [
      { DestinationName: 'api', DestinationPeer: 'cluster-a', LocalBindPort: 19090 },
    ]),
  );
  await b.register(
    withSidecar('local', 8081, [
      {
        DestinationName: 'api',
        DestinationPeer: 'cluster-a',
        LocalBindPort: 19091,
        MeshGateway: { Mode: 'local' },
      },
    ]),
  );
  await b.register({
    ID: 'gw-b',
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Address: '127.0.0.1',
    Port: 9443,
    TaggedAddresses: {
      lan: { Address: '127.0.0.1', Port: 9443 },
      wan: { Address: '198.51.100.9', Port: 443 },
    },
  });
  [webB, localB, gwB, apiA, gwA] = await Promise.all([
    b.connect('web-sidecar-proxy'),
    b.connect('local-sidecar-proxy'),
    b.connect('gw-b'),
    a.connect('api-sidecar-proxy'),
    a.connect('gw-1'),
  ]);
  await webB.until(
    (e) =>
      e.get(TypeUrl.listener, 'api?peer=cluster-a:127.0.0.1:19090') !== undefined &&
      e.get(TypeUrl.endpoint, apiCluster()) !== undefined &&
      e.get(TypeUrl.secret, peerBundleSecretName('cluster-a')) !== undefined,
    "web's peered api upstream",
  );
  await localB.until(
    (e) =>
      e.get(TypeUrl.endpoint, apiCluster()) !== undefined &&
      e.names(TypeUrl.listener).some((n) => n.includes('?peer=')),
    "local's peered api upstream",
  );
  await gwA.until(
    (e) => e.names(TypeUrl.listener).some((n) => e.json(TypeUrl.listener, n).includes('exported~')),
    "A's gateway exported chain",
  );
  await apiA.until(
    (e) =>
      acceptedTrustDomains(
        e,
        e.names(TypeUrl.listener).find((n) => n.startsWith('public_listener:')),
      ).includes(b.server.ca.trustDomain),
    "A's api roots and public listener trusting B",
  );
  await gwB.until(
    (e) => e.names(TypeUrl.cluster).some((n) => n.includes('.external.') || n.includes(tdA)),
    "B's gateway imported cluster",
  );
}, 30_000);

afterAll(async () => {
  await meshes?.close();
});

describe('peered convergence', () => {
  it("a CA rotation on A reaches B's roots:peer:cluster-a in each phase, pushing SDS only to B's sidecar", async () => {
    await webB.settle();
    const mark = webB.log.length;
    const [oldRoot] = rootsOf(webB, peerBundleSecretName('cluster-a'));
    expect(await rootsOfA()).toEqual([oldRoot]);

    // Follow A's own roots (the phase changes) and B's copy of them, every 10 ms.
    const seenA: { at: number; n: number }[] = [];
    const seenB: { at: number; n: number }[] = [];
    const t0 = Date.now();
    expect((await a.api('POST', '/v1/connect/ca/rotate')).status).toBe(200);
    const deadline = t0 + 4 * phaseMs + 10_000;
    let newRoot: string | undefined;
    while (Date.now() < deadline) {
      const rA = await rootsOfA();
      const rB = rootsOf(webB, peerBundleSecretName('cluster-a'));
      if (seenA.at(-1)?.n !== rA.length) seenA.push({ at: Date.now(), n: rA.length });
      if (seenB.at(-1)?.n !== rB.length) seenB.push({ at: Date.now(), n: rB.length });
      if (rB.length === 1 && rB[0] !== oldRoot) {
        newRoot = rB[0];
        break;
      }
      await sleep(10);
    }
    expect(
      newRoot,
      `B's peer secret ends with only the new root (A: ${JSON.stringify(seenA)}, B: ${JSON.stringify(seenB)})`,
    ).toBeDefined();
    expect(await rootsOfA()).toEqual([newRoot]);
    // Two roots while both are trusted, then the new one alone.
    const twoB = seenB.find((s) => s.n === 2);
    expect(twoB, 'B saw the trust-both phase').toBeDefined();
    const retiredA = seenA.find((s, i) => i > 0 && s.n === 1 && seenA[i - 1]!.n === 2);
    const retiredB = seenB.find((s, i) => i > 0 && s.n === 1 && seenB[i - 1]!.n === 2);
    expect(
      retiredA && retiredB,
      `retirement seen on both (A: ${JSON.stringify(seenA)}, B: ${JSON.stringify(seenB)})`,
    ).toBeTruthy();
    expect(retiredB!.at, 'B retires the old root after A does').toBeGreaterThanOrEqual(
      retiredA!.at,
    );

    // Only secrets were pushed to B's sidecar during the rotation, and only the peer bundle.
    await webB.settle();
    const during = webB.log.slice(mark);
    expect(during.length).toBeGreaterThan(0);
    expect(during.filter((r) => r.typeUrl !== TypeUrl.secret)).toEqual([]);
    expect([...new Set(during.flatMap((r) => r.names))]).toEqual([
      peerBundleSecretName('cluster-a'),
    ]);
  }, 30_000);

  it("a peer instance change (A's api sidecar moves, a new A gateway) updates B with a minimal push", async () => {
    await webB.settle();
    await gwA.settle();
    // The sidecar moving in A changes A's gateway exported~ endpoints, not what B sees (B dials A's
    // gateways).
    let mark = gwA.log.length;
    await a.register(withSidecar('api', 9090, [], '127.0.0.2'));
    const exported = () => gwA.names(TypeUrl.cluster).find((n) => n.startsWith('exported~'))!;
    await gwA.until(
      (e) => endpointsOf(e, exported()).some((x) => x.startsWith('127.0.0.2:')),
      "A's gateway following api's move",
      convergeMs,
    );
    await gwA.settle();
    // Only endpoints: the exported~ cluster's and A's local api cluster's (the gateway routes
    // both).
    const gwPushes = gwA.log.slice(mark).filter((r) => r.names.length > 0 || r.removed.length > 0);
    expect(gwPushes.map((r) => r.typeUrl)).toEqual([TypeUrl.endpoint]);
    expect(gwPushes[0]!.names).toContain(exported());
    expect(gwPushes[0]!.names.every((n) => n.includes('api.default.dc-a.internal.'))).toBe(true);

    // A new gateway in A: B's remote-mode upstream endpoints, and B's gateway's imported cluster.
    await webB.settle();
    mark = webB.log.length;
    const markGw = gwB.log.length;
    await a.register({
      ID: 'gw-2',
      Name: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Address: '127.0.0.1',
      Port: 8444,
      TaggedAddresses: { wan: { Address: '203.0.113.8', Port: 443 } },
    });
    await webB.until(
      (e) => endpointsOf(e, apiCluster()).length === 2,
      'the second gateway in B',
      convergeMs,
    );
    expect(endpointsOf(webB, apiCluster())).toEqual(['203.0.113.7:443', '203.0.113.8:443']);
    await webB.settle();
    const pushed = webB.log.slice(mark).filter((r) => r.names.length > 0 || r.removed.length > 0);
    expect(pushed.map((r) => [r.typeUrl, r.names])).toEqual([[TypeUrl.endpoint, [apiCluster()]]]);
    // B's gateway (local mode target): only its imported cluster's endpoints change.
    await gwB.until(
      (e) => e.names(TypeUrl.endpoint).some((n) => endpointsOf(e, n).includes('203.0.113.8:443')),
      "B's gateway imported endpoints",
      convergeMs,
    );
    await gwB.settle();
    for (const r of gwB.log
      .slice(markGw)
      .filter((x) => x.names.length > 0 || x.removed.length > 0)) {
      expect(r.typeUrl, 'only EDS to B gateway').toBe(TypeUrl.endpoint);
      expect(r.removed).toEqual([]);
    }
  }, 30_000);

  it('deleting the peering leaves no peer-derived resource on any proxy of either side', async () => {
    expect((await b.api('DELETE', '/v1/peering/cluster-a')).status).toBe(200);
    const leftovers = (e: EnvoyLike): string[] => {
      const out: string[] = [];
      for (const n of e.names(TypeUrl.secret))
        if (n.startsWith('roots:peer:')) out.push(`secret ${n}`);
      for (const t of [TypeUrl.cluster, TypeUrl.endpoint])
        for (const n of e.names(t))
          if (
            n.includes('.external.') ||
            n.startsWith('exported~') ||
            (n.includes(`.${tdA}`) && e !== apiA && e !== gwA)
          )
            out.push(`${t} ${n}`);
      for (const n of e.names(TypeUrl.listener)) {
        if (n.includes('?peer=')) out.push(`listener ${n}`);
        const text = e.json(TypeUrl.listener, n);
        if (text.includes('exported~')) out.push(`listener ${n} routes exported~`);
        if (text.includes('.cluster-b.') || text.includes('external'))
          out.push(`listener ${n} peered chain`);
      }
      return out;
    };
    const all = { webB, localB, gwB, apiA, gwA };
    for (const [name, e] of Object.entries(all)) {
      await e
        .until((x) => leftovers(x).length === 0, `${name} free of peer-derived resources`, 5_000)
        .catch((err) => {
          throw new Error(`${err.message}: ${leftovers(e).join(', ')}`);
        });
    }
    // And A's api no longer trusts B's trust domain: neither its listener nor any secret names it.
    await apiA.until(
      (e) =>
        !e
          .names(TypeUrl.secret)
          .some((n) => e.json(TypeUrl.secret, n).includes(b.server.ca.trustDomain)),
      "A's api secrets free of B's trust domain",
      5_000,
    );
    expect(
      apiA.json(
        TypeUrl.listener,
        apiA.names(TypeUrl.listener).find((n) => n.startsWith('public_listener:'))!,
      ),
    ).not.toContain(b.server.ca.trustDomain);
  }, 30_000);
});
