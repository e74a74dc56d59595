/**
 * Golden files of peer-derived proxy config (issue 5), built by real servers peered over their
 * peering ports, received by Delta fake Envoys: a sidecar with peered upstreams in `remote` mode
 * (through the exporter's gateways, one of them a hostname: STRICT_DNS) and `local` mode (through
 * our own gateway), the importing gateway's clusters, and a gateway exporting to two peers. Every
 * resource passes validate.rules and the cross-resource lint.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  exportedClusterName,
  inboundRootsSecretName,
  peerBundleSecretName,
  peeredServiceSni,
  peerInboundSecretName,
  peeringServerName,
} from '../../src/mesh/names.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';
import { orphanedGoldens } from '../helpers/golden.js';
import {
  expectProxyGoldens,
  resolverFailoverConfig,
  routerSplitterConfig,
  trustDomainMasker,
} from '../helpers/proxy-golden.js';
import { startMeshServer, type MeshServer } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes, type PeeredMeshes } from '../helpers/peered-mesh.js';
import { waitFor } from '../helpers/wait.js';

const open: PeeredMeshes[] = [];
const extra: MeshServer[] = [];
afterAll(async () => {
  for (const m of extra) await m.close();
  for (const m of open) await m.close();
});

async function checkProxy(
  caseName: string,
  envoy: EnvoyLike,
  tds: Record<string, string>,
): Promise<void> {
  expectProxyGoldens(`peered/${caseName}`, envoy, trustDomainMasker(tds));
}

function withSidecar(name: string, port: number, upstreams: unknown[] = []) {
  return {
    ID: name,
    Name: name,
    Address: '127.0.0.1',
    Port: port,
    Connect: { SidecarService: { Proxy: { Upstreams: upstreams } } },
  };
}

const gateway = (id: string, lan: string, wan: string) => ({
  ID: id,
  Name: 'mesh-gateway',
  Kind: 'mesh-gateway',
  Address: lan,
  Port: 8443,
  TaggedAddresses: { lan: { Address: lan, Port: 8443 }, wan: { Address: wan, Port: 443 } },
});

async function peered(): Promise<{ a: MeshServer; b: MeshServer }> {
  const m = await startPeeredMeshes();
  open.push(m);
  return m;
}

describe('golden peered proxy configs', () => {
  it('sidecar with peered upstreams in remote mode (an IP and a hostname gateway) and local mode; the importing gateway', async () => {
    const { a, b } = await peered();
    const tds = {
      'trust-domain-a': a.server.ca.trustDomain,
      'trust-domain-b': b.server.ca.trustDomain,
    };
    await a.register(withSidecar('api', 9090));
    await a.register(withSidecar('db', 5432));
    await a.register(gateway('gw-1', '10.0.0.2', '203.0.113.7'));
    await a.register(gateway('gw-2', '10.0.0.3', 'gw.dc-a.example.com'));
    await a.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    await a.putConfig(exportEntry({ api: ['cluster-b'], db: ['cluster-b'] }));
    await b.register(gateway('gw-b', '10.1.0.2', '198.51.100.9'));
    await b.putConfig({
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [{ Name: 'frontend', Peer: 'cluster-a', Action: 'deny' }],
    });
    await b.register(
      withSidecar('web', 8080, [
        { DestinationName: 'api', DestinationPeer: 'cluster-a', LocalBindPort: 19090 },
        {
          DestinationName: 'db',
          DestinationPeer: 'cluster-a',
          LocalBindPort: 15432,
          MeshGateway: { Mode: 'local' },
        },
      ]),
    );
    const web = await b.connect('web-sidecar-proxy');
    const gw = await b.connect('gw-b');
    const dbSni = peeredServiceSni(tds['trust-domain-a'], 'cluster-b', { name: 'db' });
    await web.until(
      (e) =>
        e.names(TypeUrl.listener).length === 3 &&
        e.get(TypeUrl.secret, peerBundleSecretName('cluster-a')) !== undefined &&
        e.names(TypeUrl.route).length === 1,
      'both peered upstreams with the peer bundle',
    );
    await gw.until(
      (e) => e.get(TypeUrl.cluster, dbSni) !== undefined && e.names(TypeUrl.listener).length === 1,
      "B's gateway cluster for db's peered SNI",
    );
    await b.server.snapshots.settled();
    await Promise.all([web.settle(), gw.settle()]);
    await checkProxy('sidecar-peered-upstreams', web, tds);
    await checkProxy('mesh-gateway-importing', gw, tds);
  }, 30_000);

  it('gateway exporting a TCP service (pass-through) and an HTTP service (terminated, XFCC, new mTLS) to two peers, and the exported sidecar trusting both', async () => {
    const { a, b } = await peered();
    // A third cluster, peered with A as well.
    const c = await startMeshServer({ datacenter: 'dc-c' });
    extra.push(c);
    const token = await a.api<{ PeeringToken: string }>('POST', '/v1/peering/token', {
      PeerName: 'cluster-c',
    });
    expect(
      (
        await c.api('POST', '/v1/peering/establish', {
          PeerName: 'cluster-a',
          PeeringToken: token.body.PeeringToken,
        })
      ).status,
    ).toBe(200);
    await waitFor(
      async () =>
        (await a.api<{ State: string }>('GET', '/v1/peering/cluster-c')).body?.State === 'ACTIVE',
      { timeoutMs: 5_000, intervalMs: 20, what: 'A–C ACTIVE' },
    );
    const tds = {
      'trust-domain-a': a.server.ca.trustDomain,
      'trust-domain-b': b.server.ca.trustDomain,
      'trust-domain-c': c.server.ca.trustDomain,
    };
    await a.register(withSidecar('api', 9090));
    await a.register(withSidecar('db', 5432));
    await a.register(gateway('gw-1', '10.0.0.2', '203.0.113.7'));
    await a.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    await a.putConfig(exportEntry({ api: ['cluster-b', 'cluster-c'], db: ['cluster-b'] }));
    const gw = await a.connect('gw-1');
    const api = await a.connect('api-sidecar-proxy');
    const exportedDb = exportedClusterName(tds['trust-domain-a'], 'dc-a', { name: 'db' });
    await gw.until(
      (e) =>
        e.get(TypeUrl.endpoint, exportedDb) !== undefined &&
        e
          .names(TypeUrl.listener)
          .some(
            (n) =>
              e.json(TypeUrl.listener, n).includes(exportedDb) &&
              e.json(TypeUrl.listener, n).includes(peerInboundSecretName('cluster-c')),
          ) &&
        e.get(TypeUrl.secret, peerInboundSecretName('cluster-c')) !== undefined &&
        e
          .json(TypeUrl.secret, peerInboundSecretName('cluster-c'))
          .includes(tds['trust-domain-c']) &&
        e.names(TypeUrl.secret).length === 4,
      'exported chains, the HTTP one terminating for B and C',
    );
    await api.until(
      (e) =>
        e.get(TypeUrl.secret, inboundRootsSecretName) !== undefined &&
        e.json(TypeUrl.secret, inboundRootsSecretName).includes(tds['trust-domain-c']),
      'api trusting C',
    );
    await a.server.snapshots.settled();
    await Promise.all([gw.settle(), api.settle()]);
    await checkProxy('mesh-gateway-exporting-two-peers', gw, tds);
    await checkProxy('sidecar-exported-to-two-peers', api, tds);
  }, 30_000);

  it('peering through mesh gateways: the acceptor gateway routes its server name to its peering port, the dialer gateway the peer server name to the peer server addresses', async () => {
    const [a, b] = await Promise.all([
      startMeshServer({ datacenter: 'dc-a' }),
      startMeshServer({ datacenter: 'dc-b' }),
    ]);
    extra.push(a, b);
    const meshEntry = { Kind: 'mesh', Name: 'mesh', Peering: { PeerThroughMeshGateways: true } };
    await a.putConfig(meshEntry);
    await b.putConfig(meshEntry);
    // A's gateway WAN address is A's peering port itself (no Envoy here to pass it through); B's
    // gateway refuses connections, so B falls back to the token's addresses.
    await a.register({
      ...gateway('gw-a', '127.0.0.1', '127.0.0.1'),
      TaggedAddresses: {
        lan: { Address: '127.0.0.1', Port: 8443 },
        wan: { Address: '127.0.0.1', Port: a.server.peeringPort },
      },
    });
    await b.register({
      ...gateway('gw-b', '127.0.0.1', '198.51.100.9'),
      Port: 1,
      TaggedAddresses: {
        lan: { Address: '127.0.0.1', Port: 1 },
        wan: { Address: '198.51.100.9', Port: 443 },
      },
    });
    const token = await a.api<{ PeeringToken: string }>('POST', '/v1/peering/token', {
      PeerName: 'cluster-b',
    });
    expect(
      JSON.parse(Buffer.from(token.body.PeeringToken, 'base64').toString()).ServerAddresses,
    ).toEqual([`127.0.0.1:${a.server.peeringPort}`]);
    expect(
      (
        await b.api('POST', '/v1/peering/establish', {
          PeerName: 'cluster-a',
          PeeringToken: token.body.PeeringToken,
        })
      ).status,
    ).toBe(200);
    await waitFor(
      async () =>
        (await a.api<{ State: string }>('GET', '/v1/peering/cluster-b')).body?.State === 'ACTIVE',
      { timeoutMs: 10_000, intervalMs: 20, what: 'A–B ACTIVE' },
    );
    const tds = {
      'trust-domain-a': a.server.ca.trustDomain,
      'trust-domain-b': b.server.ca.trustDomain,
      'peering-port-a': `"portValue": ${a.server.peeringPort}`,
      'peering-port-b': `"portValue": ${b.server.peeringPort}`,
    };
    const gwA = await a.connect('gw-a');
    const gwB = await b.connect('gw-b');
    const serverA = peeringServerName(tds['trust-domain-a'], 'dc-a');
    await gwA.until(
      (e) =>
        e.get(TypeUrl.endpoint, serverA) !== undefined && e.names(TypeUrl.listener).length === 1,
      "A's gateway peering server chain",
    );
    await gwB.until(
      (e) =>
        e.get(TypeUrl.endpoint, serverA) !== undefined &&
        e.get(TypeUrl.endpoint, peeringServerName(tds['trust-domain-b'], 'dc-b')) !== undefined &&
        e.names(TypeUrl.listener).length === 1,
      "B's gateway chain for A's server name",
    );
    await Promise.all([a.server.snapshots.settled(), b.server.snapshots.settled()]);
    await Promise.all([gwA.settle(), gwB.settle()]);
    await checkProxy('mesh-gateway-peering-acceptor', gwA, tds);
    await checkProxy('mesh-gateway-peering-dialer', gwB, tds);
  }, 30_000);

  it('sidecar with service-resolvers: subsets, failover to a local subset and a peer (aggregate cluster), ring hash and a request timeout; a TCP redirect to a peer', async () => {
    const { a, b } = await peered();
    const tds = {
      'trust-domain-a': a.server.ca.trustDomain,
      'trust-domain-b': b.server.ca.trustDomain,
    };
    await a.register(withSidecar('api', 9090));
    await a.register(withSidecar('db', 5432));
    await a.register(gateway('gw-1', '10.0.0.2', '203.0.113.7'));
    await a.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    await a.putConfig(exportEntry({ api: ['cluster-b'], db: ['cluster-b'] }));
    await b.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    for (const [id, version, address] of [
      ['api-1', 'v1', '10.1.0.11'],
      ['api-2', 'v2', '10.1.0.12'],
      ['api-3', 'v2', '10.1.0.13'],
    ] as const)
      await b.register({
        ID: id,
        Name: 'api',
        Address: address,
        Port: 9090,
        Meta: { version },
        Tags: version === 'v2' ? ['canary'] : [],
        Connect: { SidecarService: {} },
      });
    for (const entry of resolverFailoverConfig) await b.putConfig(entry);
    await b.register(
      withSidecar('web', 8080, [
        { DestinationName: 'api', LocalBindPort: 19090 },
        { DestinationName: 'db', LocalBindPort: 15432 },
      ]),
    );
    const web = await b.connect('web-sidecar-proxy');
    const primary = `v1.api.default.dc-b.internal.${tds['trust-domain-b']}`;
    await web.until(
      (e) =>
        e.get(TypeUrl.cluster, `failover-target~2~${primary}`) !== undefined &&
        e.get(TypeUrl.cluster, `db.default.cluster-a.external.${tds['trust-domain-a']}`) !==
          undefined &&
        e.get(TypeUrl.endpoint, `failover-target~1~${primary}`) !== undefined &&
        e.get(TypeUrl.secret, peerBundleSecretName('cluster-a')) !== undefined,
      'the failover clusters and the redirected db',
    );
    await b.server.snapshots.settled();
    await web.settle();
    await checkProxy('sidecar-resolver-failover-subsets', web, tds);
  }, 30_000);

  it('sidecar with a service-router and a service-splitter: matches, rewrite, retries, a weighted split to a subset and a peer', async () => {
    const { a, b } = await peered();
    const tds = {
      'trust-domain-a': a.server.ca.trustDomain,
      'trust-domain-b': b.server.ca.trustDomain,
    };
    await a.register(withSidecar('api', 9090));
    await a.register(gateway('gw-1', '10.0.0.2', '203.0.113.7'));
    await a.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    await a.putConfig(exportEntry({ api: ['cluster-b'] }));
    for (const [id, name, version, address] of [
      ['shop-1', 'shop', 'v1', '10.1.0.21'],
      ['shop-2', 'shop', 'v2', '10.1.0.22'],
      ['shop-next-1', 'shop-next', '', '10.1.0.23'],
    ] as const)
      await b.register({
        ID: id,
        Name: name,
        Address: address,
        Port: 9090,
        Meta: version ? { version } : {},
        Connect: { SidecarService: {} },
      });
    for (const entry of routerSplitterConfig) await b.putConfig(entry);
    await b.register(
      withSidecar('front', 8080, [{ DestinationName: 'shop', LocalBindPort: 19191 }]),
    );
    const front = await b.connect('front-sidecar-proxy');
    await front.until(
      (e) =>
        e.get(TypeUrl.cluster, `api.default.cluster-a.external.${tds['trust-domain-a']}`) !==
          undefined &&
        e.get(TypeUrl.route, 'shop') !== undefined &&
        e.get(TypeUrl.secret, peerBundleSecretName('cluster-a')) !== undefined,
      "the router's and splitter's clusters",
    );
    await b.server.snapshots.settled();
    await front.settle();
    await checkProxy('sidecar-router-splitter', front, tds);
  }, 30_000);

  it('leaves no orphaned golden files', () => {
    expect(orphanedGoldens('peered')).toEqual([]);
  });
});
