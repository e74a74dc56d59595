/**
 * What a mesh gateway routes, by SNI, on each of its listeners (docs/architecture.md §5 "What a
 * gateway routes"; issue 18): the WAN side reaches exactly the services exported to each peer
 * (under that peer's SNI, once its bundle is known), our peering server and remote datacenters;
 * the LAN side the services imported from peers, the peers' servers and remote datacenters; a
 * `default` listener both. Every other SNI, and a connection without one, matches no chain. The
 * SNIs are matched the way Envoy matches `server_names` (exact, else the longest `*.` suffix).
 */
import { describe, expect, it } from 'vitest';
import type { CaRoots, Leaf } from '../../src/ca/types.js';
import type { GatewayConfig } from '../../src/catalog/types.js';
import {
  datacenterSni,
  exportedClusterName,
  peeredServiceSni,
  peeringServerName,
  serviceSni,
} from '../../src/mesh/names.js';
import type { ImportedInstance } from '../../src/peering/imported.js';
import type { BuildContext, PeerBundle, PeeringView } from '../../src/snapshot/context.js';
import { unpackAny } from '../../src/proto-any.js';
import { buildMeshGatewaySnapshot } from '../../src/snapshot/mesh-gateway.js';
import { buildSidecarSnapshot } from '../../src/snapshot/sidecar.js';
import type { GatewayListenerIR, MeshGatewaySnapshot } from '../../src/snapshot/types.js';
import { resourcesFromSnapshot } from '../../src/xds/resources/index.js';
import { TypeUrl } from '../../src/xds/types.js';
import { FakeCatalog } from '../helpers/fake-catalog.js';
import { lintResources } from '../helpers/xds-lint.js';

type Json = Record<string, any>;

const td = 'a.consul';
const pem = (s: string) => `-----BEGIN CERTIFICATE-----\n${s}\n-----END CERTIFICATE-----\n`;
const roots: CaRoots = {
  trustDomain: td,
  activeRootId: 'r1',
  roots: [
    { id: 'r1', certPem: pem('r1'), active: true, notBefore: new Date(0), notAfter: new Date(0) },
  ],
};
const leafOf = (spiffeId: string): Leaf => ({
  spiffeId,
  certPem: pem('leaf'),
  keyPem: 'k',
  serial: '1',
  rootId: 'r1',
  notBefore: new Date(0),
  notAfter: new Date(0),
});
const bundles: Record<string, PeerBundle> = {
  'peer-b': { peer: 'peer-b', trustDomain: 'b.consul', pems: [pem('b')] },
  'peer-c': { peer: 'peer-c', trustDomain: 'c.consul', pems: [pem('c')] },
};
/** What `peer-b` replicated for its `pay`: its gateway, and the SNI it expects (its name for us). */
const paySni = 'pay.default.default.cluster-a.external.b.consul';
const peerBServer = 'server.dc-b.peering.b.consul';
const own = peeringServerName(td, 'dc-a');

/** `peer-p` is pending: no bundle yet, so nothing is exported to it at the gateway. */
const view: PeeringView = {
  peerNames: () => ['peer-b', 'peer-c', 'peer-p'],
  bundle: (p) => bundles[p],
  importedServiceNames: (p) => (p === 'peer-b' ? ['pay'] : []),
  importedInstances: (p, s) => (p === 'peer-b' && s === 'pay' ? [payGateway] : []),
  peerServers: () => [{ peer: 'peer-b', serverName: peerBServer, addresses: ['203.0.113.2:443'] }],
};

const payGateway: ImportedInstance = {
  id: 'pay-sidecar-proxy:203.0.113.2:443',
  name: 'pay-sidecar-proxy',
  kind: 'connect-proxy',
  address: '203.0.113.2',
  port: 443,
  tags: [],
  meta: {},
  namespace: 'default',
  partition: 'default',
  datacenter: 'dc-b',
  taggedAddresses: {},
  proxy: {
    destinationServiceName: 'pay',
    destinationServiceId: '',
    localServiceAddress: '',
    localServicePort: 0,
    upstreams: [],
    meshGateway: { mode: '' },
  },
  checks: [],
  createIndex: 0,
  modifyIndex: 0,
  peerName: 'peer-b',
  peerMeta: {
    sni: [paySni],
    spiffeId: ['spiffe://b.consul/ns/default/dc/dc-b/svc/pay'],
    protocol: 'tcp',
  },
};

/**
 * Cluster A: `api` (http) exported to peer-b and peer-c, `db` (tcp) exported to peer-b and to the
 * pending peer-p, `secret` exported to no one, each with a sidecar; another datacenter's gateway;
 * peering through mesh gateways on; our gateway with the given bind config.
 */
function setup(gatewayConfig?: GatewayConfig) {
  const c = new FakeCatalog('dc-a');
  for (const [name, port] of [
    ['api', 9090],
    ['db', 5432],
    ['secret', 7000],
  ] as const) {
    c.upsert({ id: name, name, port });
    c.upsert({
      id: `${name}-sidecar-proxy`,
      name: `${name}-sidecar-proxy`,
      kind: 'connect-proxy',
      address: '10.0.0.5',
      port: port + 10_000,
      proxy: {
        destinationServiceName: name,
        destinationServiceId: name,
        localServiceAddress: '127.0.0.1',
        localServicePort: port,
        meshGateway: { mode: '' },
        upstreams: [],
      },
    });
  }
  c.upsert({
    id: 'gw',
    name: 'mesh-gateway',
    kind: 'mesh-gateway',
    address: '10.0.0.2',
    port: 8443,
    taggedAddresses: {
      lan: { address: '10.0.0.2', port: 8443 },
      wan: { address: '198.51.100.9', port: 443 },
    },
    ...(gatewayConfig ? { gatewayConfig } : {}),
  });
  c.upsert({
    id: 'gw-dc2',
    name: 'mesh-gateway',
    kind: 'mesh-gateway',
    datacenter: 'dc2',
    address: '10.9.0.2',
    port: 8443,
    taggedAddresses: { wan: { address: '198.51.100.20', port: 443 } },
  });
  c.putEntry({
    kind: 'service-defaults',
    name: 'api',
    namespace: 'default',
    partition: 'default',
    protocol: 'http',
    meshGateway: { mode: '' },
  });
  c.putEntry({
    kind: 'mesh',
    name: 'mesh',
    defaultIntentionAction: 'allow',
    peering: { peerThroughMeshGateways: true },
  } as never);
  c.putEntry({
    kind: 'exported-services',
    name: 'default',
    services: [
      { name: 'api', namespace: 'default', consumers: [{ peer: 'peer-b' }, { peer: 'peer-c' }] },
      { name: 'db', namespace: 'default', consumers: [{ peer: 'peer-b' }, { peer: 'peer-p' }] },
    ],
  });
  const ctx: BuildContext = {
    catalog: c,
    datacenter: 'dc-a',
    trustDomain: td,
    roots,
    peerTrustDomain: (p) => bundles[p]?.trustDomain,
    peering: view,
    localPeeringAddresses: ['10.0.0.9:8503'],
  };
  const gw = buildMeshGatewaySnapshot(
    c.instance('gw')!,
    ctx,
    leafOf(`spiffe://${td}/gateway/mesh/dc/dc-a`),
  ).snapshot;
  return { c, ctx, gw };
}

/**
 * The cluster a listener routes `sni` to, as Envoy picks the filter chain: an exact server name,
 * else the longest matching `*.` suffix, else a chain without server names; undefined: no chain
 * matches and Envoy closes the connection.
 */
function routeOf(listener: GatewayListenerIR, sni: string | undefined): string | undefined {
  const chains = listener.chains;
  if (sni !== undefined) {
    const exact = chains.find((ch) => ch.serverNames.includes(sni));
    if (exact) return exact.cluster;
    const wild = chains
      .flatMap((ch) => ch.serverNames.map((n) => ({ n, ch })))
      .filter(({ n }) => n.startsWith('*.') && sni.endsWith(n.slice(1)))
      .sort((x, y) => y.n.length - x.n.length)[0];
    if (wild) return wild.ch.cluster;
  }
  return chains.find((ch) => ch.serverNames.length === 0)?.cluster;
}

const listenerNamed = (gw: MeshGatewaySnapshot, prefix: string) => {
  const l = gw.listeners.find((x) => x.name.startsWith(`${prefix}:`));
  if (!l) throw new Error(`no ${prefix} listener in ${gw.listeners.map((x) => x.name)}`);
  return l;
};

const exported = (svc: string) => exportedClusterName(td, 'dc-a', { name: svc });
const sniFor = (peer: string, svc: string) => peeredServiceSni(td, peer, { name: svc });

/** What the WAN side must route, SNI → cluster. */
const wanRoutes: Record<string, string> = {
  [sniFor('peer-b', 'api')]: exported('api'),
  [sniFor('peer-c', 'api')]: exported('api'),
  [sniFor('peer-b', 'db')]: exported('db'),
  [own]: own,
  [`web.default.dc2.internal.${td}`]: datacenterSni(td, 'dc2'),
};
/** What the LAN side must route. */
const lanRoutes: Record<string, string> = {
  [paySni]: paySni,
  [peerBServer]: peerBServer,
  [`web.default.dc2.internal.${td}`]: datacenterSni(td, 'dc2'),
};
/** Never routed, on any listener. */
const neverRouted: (string | undefined)[] = [
  undefined, // no SNI at all
  serviceSni(td, 'dc-a', { name: 'secret' }), // a local service no one imports
  serviceSni(td, 'dc-a', { name: 'api' }), // an exported service by its internal name
  serviceSni(td, 'dc-a', { name: 'db' }),
  exported('api'), // a gateway cluster's own name (what `sni_cluster` used to route by)
  exported('db'),
  datacenterSni(td, 'dc2'), // the remote datacenter's cluster name itself
  sniFor('peer-c', 'db'), // db is not exported to peer-c
  sniFor('peer-p', 'db'), // peer-p has no bundle yet
  sniFor('peer-b', 'secret'),
  sniFor('peer-z', 'api'), // no such peer
  'pay.default.default.cluster-a.external.c.consul', // peer-c exports no pay
  `server.dc-z.peering.${td}`,
  'example.com',
  '',
];

describe('what a mesh gateway routes, per listener', () => {
  const split = setup({ bindTaggedAddresses: true, noDefaultBind: true, bindAddresses: [] });
  const wan = listenerNamed(split.gw, 'wan');
  const lan = listenerNamed(split.gw, 'lan');

  it('the WAN listener routes exactly the exports to each peer, our peering server and the remote datacenter', () => {
    for (const [sni, cluster] of Object.entries(wanRoutes))
      expect(routeOf(wan, sni), sni).toBe(cluster);
    const wanOnly = new Set(Object.keys(wanRoutes));
    for (const sni of [...neverRouted, ...Object.keys(lanRoutes).filter((s) => !wanOnly.has(s))])
      expect(routeOf(wan, sni), `WAN ${sni}`).toBeUndefined();
    expect(wan.chains.flatMap((ch) => ch.serverNames).sort()).toEqual(
      [
        ...Object.keys(wanRoutes).filter((s) => !s.startsWith('web.')),
        `*.dc2.internal.${td}`,
      ].sort(),
    );
  });

  it('the LAN listener routes exactly the imported services, the peer servers and the remote datacenter', () => {
    for (const [sni, cluster] of Object.entries(lanRoutes))
      expect(routeOf(lan, sni), sni).toBe(cluster);
    const lanOnly = new Set(Object.keys(lanRoutes));
    for (const sni of [...neverRouted, ...Object.keys(wanRoutes).filter((s) => !lanOnly.has(s))])
      expect(routeOf(lan, sni), `LAN ${sni}`).toBeUndefined();
  });

  it('a default listener (one address for both sides) routes the union and nothing else', () => {
    const { gw } = setup();
    expect(gw.listeners.map((l) => l.name)).toEqual(['default:10.0.0.2:8443']);
    const listener = gw.listeners[0]!;
    for (const [sni, cluster] of Object.entries({ ...wanRoutes, ...lanRoutes }))
      expect(routeOf(listener, sni), sni).toBe(cluster);
    for (const sni of neverRouted) expect(routeOf(listener, sni), sni).toBeUndefined();
  });

  it('no chain is a catch-all, no server name is claimed twice, and every chain has its cluster', () => {
    for (const listener of split.gw.listeners) {
      const names = listener.chains.flatMap((ch) => ch.serverNames);
      expect(listener.chains.every((ch) => ch.serverNames.length > 0)).toBe(true);
      expect(new Set(names).size, listener.name).toBe(names.length);
    }
    const clusters = split.gw.clusters.map((c) => c.name);
    const routed = new Set(split.gw.listeners.flatMap((l) => l.chains.map((ch) => ch.cluster)));
    expect([...routed].sort()).toEqual([...clusters].sort());
    // No cluster for a local service by its internal name: nothing could route to it.
    expect(clusters.filter((n) => n.includes('.internal.') && !n.startsWith('exported~'))).toEqual([
      datacenterSni(td, 'dc2'),
    ]);
  });

  it('in Envoy terms: no chain without a server-name match, no sni_cluster filter, lint-clean', () => {
    const resources = resourcesFromSnapshot(split.gw).map((r) => ({
      typeUrl: r.typeUrl,
      name: r.name,
      message: r.build() as unknown as Record<string, unknown>,
    }));
    expect(lintResources(resources)).toEqual([]);
    const listeners = resources.filter((r) => r.typeUrl === TypeUrl.listener);
    expect(listeners).toHaveLength(2);
    const text = JSON.stringify(listeners);
    expect(text).not.toContain('sni_cluster');
    for (const l of listeners) {
      const chains = (
        l.message as { filterChains: { filterChainMatch?: { serverNames?: string[] } }[] }
      ).filterChains;
      for (const ch of chains) expect(ch.filterChainMatch?.serverNames?.length).toBeGreaterThan(0);
    }
  });

  it('a listener with nothing to route stays bound and closes every connection', () => {
    const c = new FakeCatalog('dc-a');
    c.upsert({
      id: 'gw',
      name: 'mesh-gateway',
      kind: 'mesh-gateway',
      address: '10.0.0.2',
      port: 8443,
    });
    const ctx: BuildContext = {
      catalog: c,
      datacenter: 'dc-a',
      trustDomain: td,
      roots,
      peerTrustDomain: () => undefined,
    };
    const { snapshot } = buildMeshGatewaySnapshot(c.instance('gw')!, ctx);
    expect(snapshot.listeners.map((l) => [l.name, l.chains])).toEqual([
      ['default:10.0.0.2:8443', []],
    ]);
    expect(snapshot.clusters).toEqual([]);
    const resources = resourcesFromSnapshot(snapshot).map((r) => ({
      typeUrl: r.typeUrl,
      name: r.name,
      message: r.build() as unknown as Record<string, unknown>,
    }));
    expect(lintResources(resources)).toEqual([]);
    const listener = resources[0]!.message as Json;
    expect(listener.filterChains).toEqual([]);
    // Envoy refuses a listener without any chain: the default one allows no one (RBAC ALLOW with
    // no policy) and its tcp_proxy names no cluster.
    const [rbac, tcp] = listener.defaultFilterChain.filters;
    expect(rbac.name).toBe('envoy.filters.network.rbac');
    expect(unpackAny(rbac.configType.value)).toMatchObject({ rules: { action: 0, policies: {} } });
    expect(tcp.name).toBe('envoy.filters.network.tcp_proxy');
  });
});

describe("one peer's export SNI is no way in for another peer", () => {
  const { c, ctx, gw } = setup();
  const listener = gw.listeners[0]!;
  const chainFor = (sni: string) => listener.chains.find((ch) => ch.serverNames.includes(sni))!;

  it("HTTP-family export: the gateway ends TLS on each peer's SNI trusting only that peer's trust domain", () => {
    for (const peer of ['peer-b', 'peer-c']) {
      const chain = chainFor(sniFor(peer, 'api'));
      expect(chain.terminate?.rootsSecret).toBe(`roots:inbound:peer:${peer}`);
      const secret = gw.peerInbound?.find((s) => s.name === chain.terminate?.rootsSecret);
      expect(secret?.trustDomains.map((t) => t.name)).toEqual([bundles[peer]!.trustDomain]);
    }
  });

  it("TCP export: TLS passes through to the sidecar, whose validator trusts only the consumers' trust domains", () => {
    expect(chainFor(sniFor('peer-b', 'db')).terminate).toBeUndefined();
    const db = buildSidecarSnapshot(
      c.instance('db-sidecar-proxy')!,
      leafOf(`spiffe://${td}/ns/default/dc/dc-a/svc/db`),
      ctx,
    ).snapshot;
    // peer-c consumes api, not db: a peer-c certificate on peer-b's db SNI fails at db's sidecar.
    expect(db.inbound?.trustDomains.map((t) => t.name)).toEqual([td, 'b.consul']);
    const secret = buildSidecarSnapshot(
      c.instance('secret-sidecar-proxy')!,
      leafOf(`spiffe://${td}/ns/default/dc/dc-a/svc/secret`),
      ctx,
    ).snapshot;
    expect(secret.inbound).toBeUndefined();
  });
});
