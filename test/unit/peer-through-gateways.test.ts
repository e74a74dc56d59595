/**
 * Peering through mesh gateways, in the builders and the address helpers, over a fake catalog: off
 * by default; on, the gateway routes our server name to our peering port and each dialed peer's
 * server name to its addresses (hostnames: STRICT_DNS), passing TLS through; the token and dial
 * addresses helpers put gateways first.
 */
import { describe, expect, it } from 'vitest';
import type { CaRoots } from '../../src/ca/types.js';
import {
  meshGatewayPeeringAddresses,
  withLocalGatewaysFirst,
} from '../../src/peering/through-gateways.js';
import type { BuildContext, PeeringView } from '../../src/snapshot/context.js';
import { buildMeshGatewaySnapshot } from '../../src/snapshot/mesh-gateway.js';
import { resourcesFromSnapshot } from '../../src/xds/resources/index.js';
import { FakeCatalog } from '../helpers/fake-catalog.js';
import { lintResources } from '../helpers/xds-lint.js';

const td = 'local.consul';
const roots: CaRoots = {
  trustDomain: td,
  activeRootId: 'r1',
  roots: [
    {
      id: 'r1',
      certPem: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n',
      active: true,
      notBefore: new Date(0),
      notAfter: new Date(0),
    },
  ],
};
const view: PeeringView = {
  peerNames: () => ['peer-a'],
  bundle: () => undefined,
  importedServiceNames: () => [],
  importedInstances: () => [],
  peerServers: () => [
    {
      peer: 'peer-a',
      serverName: 'server.dc-a.peering.peer.consul',
      addresses: ['203.0.113.7:443', 'gw.peer.example.com:443'],
    },
  ],
};

function setup(on: boolean) {
  const c = new FakeCatalog('dc1');
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
  } as never);
  c.putEntry({
    kind: 'mesh',
    name: 'mesh',
    defaultIntentionAction: 'allow',
    peering: { peerThroughMeshGateways: on },
  } as never);
  const ctx: BuildContext = {
    catalog: c,
    datacenter: 'dc1',
    trustDomain: td,
    roots,
    peerTrustDomain: () => undefined,
    peering: view,
    localPeeringAddresses: ['10.0.0.9:8503'],
  };
  return { c, ctx, snapshot: buildMeshGatewaySnapshot(c.instance('gw')!, ctx).snapshot };
}

describe('peering through mesh gateways', () => {
  it('off: no peering server chains or clusters, and no gateway addresses', () => {
    const { c, snapshot } = setup(false);
    expect(snapshot.listeners.map((l) => l.chains)).toEqual([[]]);
    expect(snapshot.clusters).toEqual([]);
    expect(meshGatewayPeeringAddresses(c, 'dc1', 'wan')).toEqual([]);
  });

  it('on: our server name to our peering port, the dialed peer server name to its addresses (hostname: DNS)', () => {
    const { c, snapshot } = setup(true);
    const own = `server.dc1.peering.${td}`;
    expect(
      snapshot.listeners[0]!.chains.map((ch) => [ch.serverNames, ch.cluster, ch.terminate]),
    ).toEqual([
      [[own], own, undefined],
      [['server.dc-a.peering.peer.consul'], 'server.dc-a.peering.peer.consul', undefined],
    ]);
    const byName = Object.fromEntries(snapshot.clusters.map((cl) => [cl.name, cl]));
    expect(byName[own]!.endpoints.map((e) => `${e.address}:${e.port}`)).toEqual(['10.0.0.9:8503']);
    expect(byName[own]!.tls).toBeUndefined();
    expect(byName['server.dc-a.peering.peer.consul']).toMatchObject({
      dns: true,
      endpoints: [
        { address: '203.0.113.7', port: 443 },
        { address: 'gw.peer.example.com', port: 443 },
      ],
    });
    const lint = resourcesFromSnapshot(snapshot).map((r) => ({
      typeUrl: r.typeUrl,
      name: r.name,
      message: r.build() as unknown as Record<string, unknown>,
    }));
    expect(lintResources(lint)).toEqual([]);
    expect(meshGatewayPeeringAddresses(c, 'dc1', 'wan')).toEqual(['198.51.100.9:443']);
    expect(meshGatewayPeeringAddresses(c, 'dc1', 'lan')).toEqual(['10.0.0.2:8443']);
  });

  it('dial order: local gateways first, then the peer addresses, without duplicates', () => {
    expect(withLocalGatewaysFirst(['10.0.0.2:8443'], ['203.0.113.7:443', '10.0.0.2:8443'])).toEqual(
      ['10.0.0.2:8443', '203.0.113.7:443'],
    );
    expect(withLocalGatewaysFirst([], ['203.0.113.7:443'])).toEqual(['203.0.113.7:443']);
  });
});
