/**
 * Peered traffic end to end (issue 5 "What must be shown"): two real server processes peered over
 * their peering ports; A exports `api` (sidecar + a mesh gateway with a WAN address) to B; B's
 * `web` sidecar has an upstream with DestinationPeer. Fake Envoys fetch over Delta, the pushed
 * config is walked the way Envoy would walk it, and a real TLS handshake uses exactly the pushed
 * material.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exportedClusterName,
  meshGatewaySpiffeId,
  peerBundleSecretName,
  peeredServiceSni,
  peeredUpstreamClusterName,
  serviceSpiffeId,
} from '../../src/mesh/names.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';
import { startMeshProcess, type MeshNode } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes, type PeeredMeshes } from '../helpers/peered-mesh.js';
import {
  acceptedTrustDomains,
  clientFromUpstream,
  handshake,
  serverFromPublicListener,
} from '../helpers/pushed-tls.js';

type Json = any; // Envoy-style JSON with Any expanded, walked like Envoy reads it

let meshes: PeeredMeshes<MeshNode>;
let a: MeshNode;
let b: MeshNode;
let tdA: string;
let tdB: string;
let webB: EnvoyLike;
let apiA: EnvoyLike;
let secretA: EnvoyLike;
let gwA: EnvoyLike;
let localB: EnvoyLike;
let gwB: EnvoyLike;

const json = (e: EnvoyLike, t: string, name: string): Json => JSON.parse(e.json(t, name) || 'null');
const publicListener = (e: EnvoyLike) =>
  e.names(TypeUrl.listener).find((n) => n.startsWith('public_listener:'));
const apiCluster = () => peeredUpstreamClusterName(tdA, 'cluster-a', { name: 'api' });
const sniForB = (svc: string) => peeredServiceSni(tdA, 'cluster-b', { name: svc });

/** The cluster a listener's (single matching) chain passes TCP to. */
function tcpCluster(chain: Json): string {
  const tcp = chain.filters.find((f: Json) => f.name === 'envoy.filters.network.tcp_proxy');
  return tcp?.typedConfig?.cluster;
}

function endpointsOf(e: EnvoyLike, cluster: string): string[] {
  const cla = json(e, TypeUrl.endpoint, cluster);
  return (cla?.endpoints ?? []).flatMap((l: Json) =>
    l.lbEndpoints.map(
      (lb: Json) =>
        `${lb.endpoint.address.socketAddress.address}:${lb.endpoint.address.socketAddress.portValue}`,
    ),
  );
}

function withSidecar(name: string, port: number, upstreams: unknown[] = []) {
  return {
    ID: name,
    Name: name,
    Address: '127.0.0.1',
    Port: port,
    Check: { TTL: '600s', Status: 'passing' },
    Connect: { SidecarService: { Proxy: { Upstreams: upstreams } } },
  };
}

beforeAll(async () => {
  meshes = await startPeeredMeshes({}, {}, startMeshProcess);
  ({ a, b } = meshes);
  [tdA, tdB] = await Promise.all([a.trustDomain(), b.trustDomain()]);
  await a.register(withSidecar('api', 9090));
  await a.register(withSidecar('secret', 9091));
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
      { DestinationName: 'secret', DestinationPeer: 'cluster-a', LocalBindPort: 19091 },
    ]),
  );
  // A local-mode client in B reaches A through B's own mesh gateway.
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
  await b.register(
    withSidecar('reports', 8081, [
      {
        DestinationName: 'api',
        DestinationPeer: 'cluster-a',
        LocalBindPort: 19190,
        MeshGateway: { Mode: 'local' },
      },
    ]),
  );
  [webB, apiA, secretA, gwA, localB, gwB] = await Promise.all([
    b.connect('web-sidecar-proxy'),
    a.connect('api-sidecar-proxy'),
    a.connect('secret-sidecar-proxy'),
    a.connect('gw-1'),
    b.connect('reports-sidecar-proxy'),
    b.connect('gw-b'),
  ]);
  // Pushes arrive SDS, CDS, EDS, LDS: wait for the listeners too, not only what precedes them.
  await webB.until(
    (e) =>
      e.get(TypeUrl.listener, 'api?peer=cluster-a:127.0.0.1:19090') !== undefined &&
      e.get(TypeUrl.endpoint, apiCluster()) !== undefined &&
      e.get(TypeUrl.secret, peerBundleSecretName('cluster-a')) !== undefined,
    "web's peered api upstream",
  );
  await apiA.until(
    (e) => acceptedTrustDomains(e, publicListener(e)).includes(tdB),
    "api's public listener trusting B",
  );
  await secretA.until((e) => publicListener(e) !== undefined, "secret's public listener");
  await gwA.until(
    (e) =>
      e.get(TypeUrl.endpoint, exportedClusterName(tdA, 'dc-a', { name: 'api' })) !== undefined &&
      e.names(TypeUrl.listener).some((n) => e.json(TypeUrl.listener, n).includes(sniForB('api'))),
    "A's gateway exported api cluster and chain",
  );
}, 30_000);

afterAll(async () => {
  await meshes?.close();
});

describe('peered traffic: B web → A api through A mesh gateway', () => {
  it("walks B's upstream listener → cluster → A's gateway WAN address with SNI S, and A's gateway chain for S → A's api sidecar", async () => {
    const listener = json(webB, TypeUrl.listener, 'api?peer=cluster-a:127.0.0.1:19090');
    expect(listener, 'B holds the peered upstream listener').not.toBeNull();
    expect(tcpCluster(listener.filterChains[0])).toBe(apiCluster());
    const cluster = json(webB, TypeUrl.cluster, apiCluster());
    expect(cluster.type).toBe('EDS');
    expect(endpointsOf(webB, apiCluster())).toEqual(['203.0.113.7:443']);
    const tls = cluster.transportSocket.typedConfig;
    const S = tls.sni;
    expect(S).toBe(sniForB('api'));
    expect(
      tls.commonTlsContext.combinedValidationContext.validationContextSdsSecretConfig.name,
    ).toBe(peerBundleSecretName('cluster-a'));
    expect(
      tls.commonTlsContext.combinedValidationContext.defaultValidationContext.matchTypedSubjectAltNames.map(
        (m: Json) => m.matcher.exact,
      ),
    ).toEqual([serviceSpiffeId(tdA, 'dc-a', { name: 'api' }), meshGatewaySpiffeId(tdA, 'dc-a')]);
    // B never imported `secret` (A did not export it): no half-rendered upstream.
    expect(webB.names(TypeUrl.listener).filter((n) => n.startsWith('secret'))).toEqual([]);

    const gwListener = json(gwA, TypeUrl.listener, gwA.names(TypeUrl.listener)[0]!);
    const chain = gwListener.filterChains.find((c: Json) =>
      c.filterChainMatch?.serverNames?.includes(S),
    );
    expect(chain, `A's gateway has a chain for ${S}`).toBeDefined();
    const exported = tcpCluster(chain);
    expect(exported).toBe(exportedClusterName(tdA, 'dc-a', { name: 'api' }));
    const [apiSidecar] = (await a.api<Json[]>('GET', '/v1/catalog/service/api-sidecar-proxy')).body;
    expect(endpointsOf(gwA, exported)).toEqual([
      `${apiSidecar.ServiceAddress}:${apiSidecar.ServicePort}`,
    ]);
    expect(
      gwListener.filterChains.some((c: Json) =>
        c.filterChainMatch?.serverNames?.includes(sniForB('secret')),
      ),
    ).toBe(false);
  });

  it("a local-mode client goes through B's gateway: its endpoint is B's gateway (same SNI S), whose chain for S routes to the SNI-named cluster that reaches A's gateway", async () => {
    const cluster = apiCluster();
    await localB.until(
      (e) => endpointsOf(e, cluster).length > 0,
      "the local-mode client's api endpoints",
    );
    expect(endpointsOf(localB, cluster)).toEqual(['127.0.0.1:9443']);
    expect(json(localB, TypeUrl.cluster, cluster).transportSocket.typedConfig.sni).toBe(
      sniForB('api'),
    );
    await gwB.until(
      (e) => e.get(TypeUrl.endpoint, sniForB('api')) !== undefined,
      "B's gateway cluster for the imported api",
    );
    expect(endpointsOf(gwB, sniForB('api'))).toEqual(['203.0.113.7:443']);
    const gwListener = json(gwB, TypeUrl.listener, gwB.names(TypeUrl.listener)[0]!);
    const chain = gwListener.filterChains.find((c: Json) =>
      c.filterChainMatch?.serverNames?.includes(sniForB('api')),
    );
    expect(tcpCluster(chain)).toBe(sniForB('api'));
    // No catch-all: every chain names its SNIs (docs/architecture.md §5 "What a gateway routes").
    expect(
      gwListener.filterChains.filter((c: Json) => !c.filterChainMatch?.serverNames?.length),
    ).toEqual([]);
  });

  it("a real mTLS handshake with exactly the pushed material: B's upstream against A's api public_listener succeeds", async () => {
    const client = clientFromUpstream(webB, apiCluster());
    const server = serverFromPublicListener(apiA, publicListener(apiA)!);
    expect(server.trustDomains?.map((t) => t.name)).toEqual(
      [tdA, tdB].sort((x, y) => (x === tdA ? -1 : y === tdA ? 1 : 0)),
    );
    const result = await handshake(client, server);
    expect(result).toMatchObject({ ok: true });
    if (result.ok) {
      expect(result.value.serverSawClientUris).toEqual([
        serviceSpiffeId(tdB, 'dc-b', { name: 'web' }),
      ]);
      expect(result.value.clientSawServerUris).toEqual([
        serviceSpiffeId(tdA, 'dc-a', { name: 'api' }),
      ]);
    }
  });

  it('the same client against a service A did not export to B fails: its listener trusts only A', async () => {
    const client = clientFromUpstream(webB, apiCluster());
    const server = serverFromPublicListener(secretA, publicListener(secretA)!);
    expect(server.trustDomains).toBeUndefined();
    const result = await handshake(
      { ...client, sanMatchers: [serviceSpiffeId(tdA, 'dc-a', { name: 'secret' })] },
      server,
    );
    expect(result.ok).toBe(false);
  });

  it("the SPIFFE check is real: with B's trust domain left out of the validator, B's client is refused though the roots are the same", async () => {
    const client = clientFromUpstream(webB, apiCluster());
    const server = serverFromPublicListener(apiA, publicListener(apiA)!);
    const onlyA = { ...server, trustDomains: server.trustDomains!.filter((t) => t.name === tdA) };
    const result = await handshake(client, onlyA);
    expect(result.ok).toBe(false);
  });

  it("intentions with a Peer source become RBAC on A's api: B's web is denied, another B service is not", async () => {
    await a.putConfig({
      Kind: 'service-intentions',
      Name: 'api',
      Sources: [{ Name: 'web', Peer: 'cluster-b', Action: 'deny' }],
    });
    await apiA.until(
      (e) => e.json(TypeUrl.listener, publicListener(e)!).includes('svc/web'),
      'the deny intention in api RBAC',
      5_000,
    );
    const listener = json(apiA, TypeUrl.listener, publicListener(apiA)!);
    const result = await handshake(
      clientFromUpstream(webB, apiCluster()),
      serverFromPublicListener(apiA, publicListener(apiA)!),
    );
    expect(result.ok, 'TLS itself still succeeds: RBAC comes after it').toBe(true);
    const webUri = result.ok ? result.value.serverSawClientUris[0]! : '';
    expect(rbacAllows(listener, webUri)).toBe(false);
    expect(rbacAllows(listener, serviceSpiffeId(tdB, 'dc-b', { name: 'frontend' }))).toBe(true);
    // Another datacenter of the peer is matched too (peer sources match any datacenter).
    expect(rbacAllows(listener, serviceSpiffeId(tdB, 'dc-x', { name: 'web' }))).toBe(false);
  });

  it("a new gateway in A reaches B's upstream endpoints", async () => {
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
      10_000,
    );
    expect(endpointsOf(webB, apiCluster())).toEqual(['203.0.113.7:443', '203.0.113.8:443']);
  });

  it("an HTTP export is terminated at A's gateway: B's upstream handshakes with the gateway, which handshakes anew with A's sidecar", async () => {
    await a.register(withSidecar('orders', 9092));
    await a.putConfig({ Kind: 'service-defaults', Name: 'orders', Protocol: 'http' });
    await a.putConfig(exportEntry({ api: ['cluster-b'], orders: ['cluster-b'] }));
    await b.register(
      withSidecar('web', 8080, [
        { DestinationName: 'api', DestinationPeer: 'cluster-a', LocalBindPort: 19090 },
        { DestinationName: 'secret', DestinationPeer: 'cluster-a', LocalBindPort: 19091 },
        { DestinationName: 'orders', DestinationPeer: 'cluster-a', LocalBindPort: 19092 },
      ]),
    );
    const ordersCluster = peeredUpstreamClusterName(tdA, 'cluster-a', { name: 'orders' });
    const exportedOrders = exportedClusterName(tdA, 'dc-a', { name: 'orders' });
    const ordersA = await a.connect('orders-sidecar-proxy');
    await webB.until(
      (e) =>
        e.get(TypeUrl.cluster, ordersCluster) !== undefined &&
        e.get(TypeUrl.endpoint, ordersCluster) !== undefined,
      "web's orders upstream",
      5_000,
    );
    const gwName = () => gwA.names(TypeUrl.listener)[0]!;
    await gwA.until(
      (e) =>
        e.json(TypeUrl.listener, gwName()).includes('http_connection_manager') &&
        e.get(TypeUrl.endpoint, exportedOrders) !== undefined &&
        e.names(TypeUrl.secret).length === 3,
      "A's gateway terminating orders",
      5_000,
    );
    await ordersA.until(
      (e) => acceptedTrustDomains(e, publicListener(e)).includes(tdB),
      "orders' public listener",
      5_000,
    );

    // Leg 1: B's sidecar → A's gateway (the gateway's leaf is in the replicated SAN list).
    const chain = json(gwA, TypeUrl.listener, gwName()).filterChains.find(
      (c: Json) => c.transportSocket,
    );
    expect(chain.filterChainMatch.serverNames).toEqual([sniForB('orders')]);
    const hcm = chain.filters[0].typedConfig;
    expect(hcm.forwardClientCertDetails).toBe('SANITIZE_SET');
    expect(hcm.routeConfig.virtualHosts[0].routes[0].route.cluster).toBe(exportedOrders);
    const leg1 = await handshake(
      clientFromUpstream(webB, ordersCluster),
      serverFromPublicListener(gwA, gwName()),
    );
    expect(leg1).toMatchObject({
      ok: true,
      value: {
        serverSawClientUris: [serviceSpiffeId(tdB, 'dc-b', { name: 'web' })],
        clientSawServerUris: [meshGatewaySpiffeId(tdA, 'dc-a')],
      },
    });

    // Leg 2: A's gateway → A's orders sidecar, new mTLS under A's CA.
    const leg2 = await handshake(
      clientFromUpstream(gwA, exportedOrders),
      serverFromPublicListener(ordersA, publicListener(ordersA)!),
    );
    expect(leg2).toMatchObject({
      ok: true,
      value: {
        serverSawClientUris: [meshGatewaySpiffeId(tdA, 'dc-a')],
        clientSawServerUris: [serviceSpiffeId(tdA, 'dc-a', { name: 'orders' })],
      },
    });
  });

  it("unexporting orders removes B's upstream and A's gateway chain and cluster", async () => {
    await a.putConfig(exportEntry({ api: ['cluster-b'] }));
    const ordersCluster = peeredUpstreamClusterName(tdA, 'cluster-a', { name: 'orders' });
    await webB.until(
      (e) =>
        e.get(TypeUrl.cluster, ordersCluster) === undefined &&
        e.get(TypeUrl.endpoint, ordersCluster) === undefined &&
        !e.names(TypeUrl.listener).some((n) => n.startsWith('orders?peer=')),
      "web's orders upstream gone",
      10_000,
    );
    await gwA.until(
      (e) =>
        !e.json(TypeUrl.listener, e.names(TypeUrl.listener)[0]!).includes(sniForB('orders')) &&
        e.get(TypeUrl.cluster, exportedClusterName(tdA, 'dc-a', { name: 'orders' })) === undefined,
      "A's gateway orders chain gone",
      10_000,
    );
    // api is still exported: B's api upstream stays.
    expect(webB.get(TypeUrl.cluster, apiCluster())).toBeDefined();
  });

  it('deleting the peering removes every peer-derived resource on both sides', async () => {
    expect((await b.api('DELETE', '/v1/peering/cluster-a')).status).toBe(200);
    await webB.until(
      (e) =>
        e.get(TypeUrl.cluster, apiCluster()) === undefined &&
        e.get(TypeUrl.endpoint, apiCluster()) === undefined &&
        e.get(TypeUrl.secret, peerBundleSecretName('cluster-a')) === undefined &&
        !e.names(TypeUrl.listener).some((n) => n.includes('?peer=')),
      "B's peered upstream gone",
      5_000,
    );
    await apiA.until(
      (e) =>
        publicListener(e) !== undefined &&
        !e.json(TypeUrl.listener, publicListener(e)!).includes(tdB) &&
        !acceptedTrustDomains(e, publicListener(e)).includes(tdB) &&
        !JSON.stringify(e.names(TypeUrl.secret).map((n) => e.json(TypeUrl.secret, n))).includes(
          tdB,
        ),
      "A's api no longer trusting B",
      5_000,
    );
    // Removals are pushed last (after LDS): wait for the cluster to go too.
    await gwA.until(
      (e) =>
        !e.json(TypeUrl.listener, e.names(TypeUrl.listener)[0]!).includes(sniForB('api')) &&
        e.get(TypeUrl.cluster, exportedClusterName(tdA, 'dc-a', { name: 'api' })) === undefined,
      "A's gateway chain and exported cluster for B gone",
      5_000,
    );
  });
});

/**
 * Envoy's network RBAC over one URI SAN: DENY blocks what any policy matches, ALLOW admits only
 * that.
 */
function rbacAllows(listener: Json, uri: string): boolean {
  const filter = listener.filterChains[0].filters.find(
    (f: Json) => f.name === 'envoy.filters.network.rbac',
  );
  const rules = filter.typedConfig.rules ?? {};
  const matches = (p: Json): boolean => {
    if (p.authenticated) return new RegExp(p.authenticated.principalName.safeRegex.regex).test(uri);
    if (p.andIds) return p.andIds.ids.every(matches);
    if (p.orIds) return p.orIds.ids.some(matches);
    if (p.notId) return !matches(p.notId);
    if (p.any) return true;
    throw new Error(`principal not modelled: ${JSON.stringify(p)}`);
  };
  const matched = Object.values(rules.policies ?? {}).some((policy: Json) =>
    policy.principals.some(matches),
  );
  return (rules.action ?? 'ALLOW') === 'DENY' ? !matched : matched;
}
