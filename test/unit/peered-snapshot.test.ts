/**
 * The peered parts of the snapshot builders over a fake catalog and peering view: a peered
 * upstream is rendered only once both the peer's instances and its bundle are known (never half),
 * with SNI / SANs / protocol from PeerMeta as replicated (not recomputed), and hostnames make a
 * STRICT_DNS cluster with no EDS resource.
 */
import { describe, expect, it } from 'vitest';
import type { CaRoots, Leaf } from '../../src/ca/types.js';
import type { ImportedInstance } from '../../src/peering/imported.js';
import { buildMeshGatewaySnapshot } from '../../src/snapshot/mesh-gateway.js';
import { buildSidecarSnapshot } from '../../src/snapshot/sidecar.js';
import type { BuildContext, PeerBundle, PeeringView } from '../../src/snapshot/context.js';
import { upstreamEdsClusters } from '../../src/snapshot/types.js';
import { resourcesFromSnapshot } from '../../src/xds/resources/index.js';
import { TypeUrl } from '../../src/xds/types.js';
import { FakeCatalog } from '../helpers/fake-catalog.js';
import { lintResources } from '../helpers/xds-lint.js';

const td = 'local.consul';
const peerTd = 'peer.consul';
const pem = (s: string) => `-----BEGIN CERTIFICATE-----\n${s}\n-----END CERTIFICATE-----\n`;
const roots: CaRoots = {
  trustDomain: td,
  activeRootId: 'r1',
  roots: [
    { id: 'r1', certPem: pem('root'), active: true, notBefore: new Date(0), notAfter: new Date(0) },
  ],
};
const leaf: Leaf = {
  spiffeId: `spiffe://${td}/ns/default/dc/dc1/svc/web`,
  certPem: pem('leaf'),
  keyPem: 'k',
  serial: '1',
  rootId: 'r1',
  notBefore: new Date(0),
  notAfter: new Date(0),
};
// Deliberately not what isthmus would compute: the importer must use it as replicated.
const meta = {
  sni: ['api.replicated.sni'],
  spiffeId: ['spiffe://peer.consul/replicated/api'],
  protocol: 'http2',
};

function synthetic(address: string): ImportedInstance {
  return {
    id: `api-sidecar-proxy:${address}:443`,
    name: 'api-sidecar-proxy',
    kind: 'connect-proxy',
    address,
    port: 443,
    tags: [],
    meta: {},
    namespace: 'default',
    partition: 'default',
    datacenter: 'dc-a',
    taggedAddresses: {},
    proxy: {
      destinationServiceName: 'api',
      destinationServiceId: '',
      localServiceAddress: '',
      localServicePort: 0,
      upstreams: [],
      meshGateway: { mode: '' },
    },
    checks: [],
    createIndex: 0,
    modifyIndex: 0,
    peerName: 'peer-a',
    peerMeta: meta,
  };
}

function view(bundle: PeerBundle | undefined, instances: readonly ImportedInstance[]): PeeringView {
  return {
    peerNames: () => ['peer-a'],
    bundle: (p) => (p === 'peer-a' ? bundle : undefined),
    importedServiceNames: () => (instances.length ? ['api'] : []),
    importedInstances: (p, s) => (p === 'peer-a' && s === 'api' ? instances : []),
  };
}

function catalog(): FakeCatalog {
  const c = new FakeCatalog('dc1');
  c.upsert({ id: 'web-1', name: 'web', port: 8080 });
  c.upsert({
    id: 'web-1-sidecar-proxy',
    name: 'web-sidecar-proxy',
    kind: 'connect-proxy',
    address: '10.0.0.3',
    port: 21000,
    proxy: {
      destinationServiceName: 'web',
      destinationServiceId: 'web-1',
      localServiceAddress: '127.0.0.1',
      localServicePort: 8080,
      meshGateway: { mode: '' },
      upstreams: [
        {
          destinationName: 'api',
          destinationNamespace: '',
          destinationPartition: '',
          destinationPeer: 'peer-a',
          datacenter: '',
          localBindAddress: '127.0.0.1',
          localBindPort: 19090,
          meshGateway: { mode: '' },
        },
      ],
    },
  });
  return c;
}

const bundle: PeerBundle = { peer: 'peer-a', trustDomain: peerTd, pems: [pem('peer-root')] };

function build(peering: PeeringView) {
  const c = catalog();
  const ctx: BuildContext = {
    catalog: c,
    datacenter: 'dc1',
    trustDomain: td,
    roots,
    peerTrustDomain: (p) => peering.bundle(p)?.trustDomain,
    peering,
  };
  return buildSidecarSnapshot(c.instance('web-1-sidecar-proxy')!, leaf, ctx);
}

describe('peered sidecar upstreams', () => {
  it("is left out until both the instances and the bundle are known, and depends on the peer's service", () => {
    for (const [b, instances] of [
      [undefined, [synthetic('192.0.2.1')]],
      [bundle, []],
    ] as const) {
      const built = build(view(b, instances));
      expect(built.snapshot.upstreams).toEqual([]);
      expect(built.snapshot.roots.map((r) => r.name)).toEqual(['roots:local']);
      expect(built.deps.has('peer:peer-a/api')).toBe(true);
      // Not on the peer's other services: a change to one of them rebuilds no such sidecar.
      expect([...built.deps].filter((d) => d.startsWith('peer:')).sort()).toEqual([
        'peer:peer-a/*',
        'peer:peer-a/api',
      ]);
    }
  });

  it('takes SNI, SANs and protocol from PeerMeta and trusts the peer bundle secret', () => {
    const { snapshot } = build(view(bundle, [synthetic('192.0.2.1')]));
    expect(snapshot.upstreams).toHaveLength(1);
    const u = snapshot.upstreams[0]!;
    expect(u.listenerName).toBe('api?peer=peer-a:127.0.0.1:19090');
    expect(u.protocol).toBe('http2');
    expect(u.cluster.name).toBe(`api.default.peer-a.external.${peerTd}`);
    const [cluster] = upstreamEdsClusters(u);
    expect(cluster?.tls).toEqual({
      sni: 'api.replicated.sni',
      leafSecret: `leaf:${leaf.spiffeId}`,
      rootsSecret: 'roots:peer:peer-a',
      spiffeIds: meta.spiffeId,
    });
    expect(cluster?.dns).toBeUndefined();
    expect(snapshot.roots).toContainEqual({ name: 'roots:peer:peer-a', pems: [pem('peer-root')] });
  });

  it('a hostname gateway makes a STRICT_DNS cluster with its hosts inline and no EDS resource', () => {
    const { snapshot } = build(
      view(bundle, [synthetic('192.0.2.1'), synthetic('gw.peer.example.com')]),
    );
    const specs = resourcesFromSnapshot(snapshot);
    const name = snapshot.upstreams[0]!.cluster.name;
    expect(specs.some((s) => s.typeUrl === TypeUrl.endpoint && s.name === name)).toBe(false);
    const cluster = specs
      .find((s) => s.typeUrl === TypeUrl.cluster && s.name === name)!
      .build() as any;
    expect(cluster.clusterDiscoveryType.value).toBe(1 /* STRICT_DNS */);
    const hosts = cluster.loadAssignment.endpoints[0].lbEndpoints.map(
      (e: any) => e.hostIdentifier.value.address.address.value.address,
    );
    expect(hosts).toEqual(['192.0.2.1', 'gw.peer.example.com']);
    const lint = specs.map((s) => ({
      typeUrl: s.typeUrl,
      name: s.name,
      message: s.build() as unknown as Record<string, unknown>,
    }));
    expect(lintResources(lint)).toEqual([]);
  });

  it('the lint refuses a STRICT_DNS cluster without inline hosts or with an EDS config', () => {
    const base = { name: 'c', clusterDiscoveryType: { $case: 'type', value: 1 } };
    expect(lintResources([{ typeUrl: TypeUrl.cluster, name: 'c', message: base }])).toEqual([
      'c: STRICT_DNS cluster without inline hosts',
    ]);
    const withEds = {
      ...base,
      edsClusterConfig: {},
      loadAssignment: { endpoints: [{ lbEndpoints: [{}] }] },
    };
    expect(lintResources([{ typeUrl: TypeUrl.cluster, name: 'c', message: withEds }])).toEqual([
      'c: STRICT_DNS cluster with an eds_cluster_config',
    ]);
  });
});

/**
 * Two datacenters of one WAN federation, both peered with us (docs/architecture.md §6c
 * "Federation and peering together"): one trust domain, and one name for us (their global
 * `exported-services` entry names it), so both export `api` under the same SNI. A gateway routes
 * by SNI alone: it must not send one peer's callers to the other.
 */
describe('one SNI exported by two peers (two federated datacenters)', () => {
  const fedTd = 'fed.consul';
  const sni = `api.default.default.us.external.${fedTd}`;
  const from = (peer: string, address: string): ImportedInstance => ({
    ...synthetic(address),
    peerName: peer,
    peerMeta: {
      sni: [sni],
      spiffeId: [`spiffe://${fedTd}/ns/default/dc/${peer}/svc/api`],
      protocol: 'tcp',
    },
  });
  const imports: Record<string, ImportedInstance[]> = {
    'dc-a': [from('dc-a', '192.0.2.1')],
    'dc-b': [from('dc-b', '198.51.100.1')],
  };
  const twoPeers = (peers: readonly string[]): PeeringView => ({
    peerNames: () => peers,
    bundle: (p) =>
      peers.includes(p) ? { peer: p, trustDomain: fedTd, pems: [pem(`${p}-root`)] } : undefined,
    importedServiceNames: (p) => (peers.includes(p) ? ['api'] : []),
    importedInstances: (p, s) => (peers.includes(p) && s === 'api' ? (imports[p] ?? []) : []),
  });
  function localMode(peering: PeeringView, peer: string) {
    const c = catalog();
    const web = c.instance('web-1-sidecar-proxy')!;
    const upstream = { ...web.proxy!.upstreams[0]!, destinationPeer: peer };
    c.upsert({
      ...web,
      proxy: { ...web.proxy!, upstreams: [upstream], meshGateway: { mode: 'local' } },
    });
    c.upsert({
      id: 'gw',
      name: 'mesh-gateway',
      kind: 'mesh-gateway',
      address: '10.0.0.9',
      port: 8443,
    });
    const ctx: BuildContext = {
      catalog: c,
      datacenter: 'dc1',
      trustDomain: td,
      roots,
      peerTrustDomain: (p) => peering.bundle(p)?.trustDomain,
      peering,
    };
    const sidecar = buildSidecarSnapshot(c.instance('web-1-sidecar-proxy')!, leaf, ctx);
    const gateway = buildMeshGatewaySnapshot(c.instance('gw')!, ctx);
    const endpoints = upstreamEdsClusters(sidecar.snapshot.upstreams[0]!)[0]!.endpoints;
    return { sidecar, gateway: gateway.snapshot, endpoints: endpoints.map((e) => e.address) };
  }

  it('with one peer, mode local goes through our gateway, which routes the SNI to the peer', () => {
    const { endpoints, gateway } = localMode(twoPeers(['dc-b']), 'dc-b');
    expect(endpoints).toEqual(['10.0.0.9']);
    expect(gateway.clusters.find((c) => c.name === sni)?.endpoints.map((e) => e.address)).toEqual([
      '198.51.100.1',
    ]);
  });

  it("with both, our gateway routes the SNI to neither; mode local dials each peer's own gateways, and is rebuilt on either peer's imports", () => {
    for (const [peer, address] of [
      ['dc-a', '192.0.2.1'],
      ['dc-b', '198.51.100.1'],
    ] as const) {
      const { endpoints, gateway, sidecar } = localMode(twoPeers(['dc-a', 'dc-b']), peer);
      expect(endpoints).toEqual([address]);
      expect(gateway.clusters.map((c) => c.name)).not.toContain(sni);
      expect([...sidecar.deps].filter((d) => d.startsWith('peer:')).sort()).toEqual([
        'peer:dc-a/*',
        'peer:dc-a/api',
        'peer:dc-b/*',
        'peer:dc-b/api',
      ]);
    }
  });
});
