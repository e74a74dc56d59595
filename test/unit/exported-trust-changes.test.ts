/**
 * What a change of trust does to the config of an exporting cluster's proxies (issue "Real Envoy
 * in the loop", changes under traffic). Envoy drains, then closes, every connection of a listener
 * filter chain that changes, so: a CA rotation (ours or a consuming peer's) may change secrets
 * only, and a new consuming peer may add its own chains and secrets but must leave every filter
 * chain of the peers already served byte for byte as it was.
 */
import { describe, expect, it } from 'vitest';
import type { CaRoots, Leaf } from '../../src/ca/types.js';
import { Listener } from '../../src/gen/envoy/config/listener/v3/listener.js';
import { FilterChain } from '../../src/gen/envoy/config/listener/v3/listener_components.js';
import type { BuildContext, PeerBundle, PeeringView } from '../../src/snapshot/context.js';
import { buildMeshGatewaySnapshot } from '../../src/snapshot/mesh-gateway.js';
import { buildSidecarSnapshot } from '../../src/snapshot/sidecar.js';
import type { ConfigSnapshot } from '../../src/snapshot/types.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { resourcesFromSnapshot } from '../../src/xds/resources/index.js';
import { TypeUrl } from '../../src/xds/types.js';
import { FakeCatalog } from '../helpers/fake-catalog.js';
import { lintResources } from '../helpers/xds-lint.js';

const cache = new XdsCache();
const td = 'a.consul';
const pem = (s: string) => `-----BEGIN CERTIFICATE-----\n${s}\n-----END CERTIFICATE-----\n`;
const rootsOf = (...ids: string[]): CaRoots => ({
  trustDomain: td,
  activeRootId: ids[0]!,
  roots: ids.map((id, i) => ({
    id,
    certPem: pem(id),
    active: i === 0,
    notBefore: new Date(0),
    notAfter: new Date(0),
  })),
});
const leafOf = (spiffeId: string, rootId: string): Leaf => ({
  spiffeId,
  certPem: pem(`leaf-${rootId}`),
  keyPem: 'k',
  serial: rootId,
  rootId,
  notBefore: new Date(0),
  notAfter: new Date(0),
});
const bundles: Record<string, PeerBundle> = {
  'cluster-b': { peer: 'cluster-b', trustDomain: 'b.consul', pems: [pem('b-root-1')] },
  'cluster-c': { peer: 'cluster-c', trustDomain: 'c.consul', pems: [pem('c-root-1')] },
};

function view(peers: Record<string, PeerBundle>): PeeringView {
  return {
    peerNames: () => Object.keys(peers).sort(),
    bundle: (p) => peers[p],
    importedServiceNames: () => [],
    importedInstances: () => [],
  };
}

/** A cluster exporting `api` (HTTP) and `db` (TCP), each behind a sidecar, with a mesh gateway. */
function catalog(consumers: readonly string[]): FakeCatalog {
  const c = new FakeCatalog('dc-a');
  for (const [name, port] of [
    ['api', 9090],
    ['db', 5432],
  ] as const) {
    c.upsert({ id: name, name, port });
    c.upsert({
      id: `${name}-sidecar-proxy`,
      name: `${name}-sidecar-proxy`,
      kind: 'connect-proxy',
      address: '127.0.0.1',
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
    address: '127.0.0.1',
    port: 8443,
  });
  c.putEntry({
    kind: 'service-defaults',
    name: 'api',
    namespace: 'default',
    partition: 'default',
    protocol: 'http',
    meshGateway: { mode: '' },
  });
  const consumersOf = consumers.map((peer) => ({ peer }));
  c.putEntry({
    kind: 'exported-services',
    name: 'default',
    services: [
      { name: 'api', namespace: 'default', consumers: consumersOf },
      { name: 'db', namespace: 'default', consumers: consumersOf },
    ],
  });
  return c;
}

/** The exporting proxies' resources: name → encoded bytes (hex), per type. */
function proxies(opts: {
  roots: CaRoots;
  peers: Record<string, PeerBundle>;
}): Record<string, Map<string, string>> {
  const c = catalog(Object.keys(opts.peers));
  const peering = view(opts.peers);
  const ctx: BuildContext = {
    catalog: c,
    datacenter: 'dc-a',
    trustDomain: td,
    roots: opts.roots,
    peerTrustDomain: (p) => peering.bundle(p)?.trustDomain,
    peering,
  };
  const rootId = opts.roots.activeRootId;
  const snapshots: Record<string, ConfigSnapshot> = {
    gw: buildMeshGatewaySnapshot(
      c.instance('gw')!,
      ctx,
      leafOf(`spiffe://${td}/gateway/mesh/dc/dc-a`, rootId),
    ).snapshot,
    api: buildSidecarSnapshot(
      c.instance('api-sidecar-proxy')!,
      leafOf(`spiffe://${td}/ns/default/dc/dc-a/svc/api`, rootId),
      ctx,
    ).snapshot,
    db: buildSidecarSnapshot(
      c.instance('db-sidecar-proxy')!,
      leafOf(`spiffe://${td}/ns/default/dc/dc-a/svc/db`, rootId),
      ctx,
    ).snapshot,
  };
  const out: Record<string, Map<string, string>> = {};
  for (const [proxy, snapshot] of Object.entries(snapshots)) {
    const specs = resourcesFromSnapshot(snapshot);
    expect(
      lintResources(
        specs.map((s) => ({
          typeUrl: s.typeUrl,
          name: s.name,
          message: s.build() as unknown as Record<string, unknown>,
        })),
      ),
      `${proxy} lint`,
    ).toEqual([]);
    out[proxy] = new Map(
      specs.map((s) => [
        `${s.typeUrl} ${s.name}`,
        Buffer.from(cache.encode(s.build()).bytes).toString('hex'),
      ]),
    );
  }
  return out;
}

/** The resources that differ between two builds, as `<type> <name>` (added, removed or changed). */
function changed(before: Map<string, string>, after: Map<string, string>): string[] {
  const names = new Set([...before.keys(), ...after.keys()]);
  return [...names]
    .filter((n) => before.get(n) !== after.get(n))
    .map((n) => n.replace(/^type\.googleapis\.com\/[a-z._0-9]+\.v3\./, ''))
    .sort();
}

const onlySecrets = (names: readonly string[]) => names.filter((n) => !n.startsWith('Secret '));

describe('trust changes on an exporting cluster touch secrets only', () => {
  it('a CA rotation here, in each phase, changes no listener or cluster of the exported sidecars or the gateway', () => {
    const peers = { 'cluster-b': bundles['cluster-b']! };
    const before = proxies({ roots: rootsOf('r1'), peers });
    const trustBoth = proxies({ roots: { ...rootsOf('r1', 'r2') }, peers });
    const reissued = proxies({ roots: { ...rootsOf('r2', 'r1') }, peers });
    const retired = proxies({ roots: rootsOf('r2'), peers });
    for (const [from, to] of [
      [before, trustBoth],
      [trustBoth, reissued],
      [reissued, retired],
    ] as const) {
      for (const proxy of ['gw', 'api', 'db']) {
        const diff = changed(from[proxy]!, to[proxy]!);
        expect(onlySecrets(diff), `${proxy}: ${diff.join(', ')}`).toEqual([]);
      }
    }
    // The exported sidecars' SPIFFE secret and the roots did change (the check above can fail).
    expect(changed(before.api!, trustBoth.api!)).toEqual([
      'Secret roots:inbound',
      'Secret roots:local',
    ]);
  });

  it("a consuming peer's rotation changes only that peer's SPIFFE secrets on the gateway and the exported sidecars", () => {
    const before = proxies({ roots: rootsOf('r1'), peers: { ...bundles } });
    const rotatedB = proxies({
      roots: rootsOf('r1'),
      peers: {
        ...bundles,
        'cluster-b': { ...bundles['cluster-b']!, pems: [pem('b-root-1'), pem('b-root-2')] },
      },
    });
    expect(changed(before.gw!, rotatedB.gw!)).toEqual(['Secret roots:inbound:peer:cluster-b']);
    for (const proxy of ['api', 'db'])
      expect(changed(before[proxy]!, rotatedB[proxy]!), proxy).toEqual(['Secret roots:inbound']);
  });

  it("a new consuming peer adds its own gateway chains and secret, and leaves the other peer's chains as they were", () => {
    const onlyB = proxies({ roots: rootsOf('r1'), peers: { 'cluster-b': bundles['cluster-b']! } });
    const withC = proxies({ roots: rootsOf('r1'), peers: { ...bundles } });
    expect(changed(onlyB.gw!, withC.gw!)).toEqual([
      'Listener default:127.0.0.1:8443',
      'Secret roots:inbound:peer:cluster-c',
    ]);
    const chainsOf = (hex: string) =>
      Listener.decode(Buffer.from(hex, 'hex')).filterChains.map((ch) =>
        Buffer.from(FilterChain.encode(ch).finish()).toString('hex'),
      );
    const chainsB = chainsOf(onlyB.gw!.get(`${TypeUrl.listener} default:127.0.0.1:8443`)!);
    const chainsC = chainsOf(withC.gw!.get(`${TypeUrl.listener} default:127.0.0.1:8443`)!);
    // B's chains (api terminated, db passed through) are both still there, byte for byte.
    expect(chainsB).toHaveLength(2);
    for (const chain of chainsB) expect(chainsC).toContain(chain);
    expect(chainsC).toHaveLength(4);
    // The exported sidecars: only their SPIFFE secret gains C's trust domain.
    for (const proxy of ['api', 'db'])
      expect(changed(onlyB[proxy]!, withC[proxy]!), proxy).toEqual(['Secret roots:inbound']);
  });
});
