/**
 * Mesh gateway bind variants (Consul `Proxy.Config` `envoy_mesh_gateway_*`): a registration goes
 * through the real parser and snapshot builder, and the resulting listeners are checked the way
 * Envoy would take them (validate.rules, the cross-resource lint, no two on one address).
 */
import { describe, expect, it } from 'vitest';
import { messageTypeRegistry } from '../../src/gen/typeRegistry.js';
import type { CaRoots } from '../../src/ca/types.js';
import { parseRegistration } from '../../src/catalog/registration.js';
import type { BuildContext } from '../../src/snapshot/context.js';
import { buildMeshGatewaySnapshot } from '../../src/snapshot/mesh-gateway.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { resourcesFromSnapshot } from '../../src/xds/resources/index.js';
import { TypeUrl } from '../../src/xds/types.js';
import { FakeCatalog } from '../helpers/fake-catalog.js';
import { validateMessage } from '../helpers/pgv.js';
import { lintResources } from '../helpers/xds-lint.js';

const td = '11111111-2222-3333-4444-555555555555.consul';
const roots: CaRoots = {
  trustDomain: td,
  activeRootId: 'r1',
  roots: [
    {
      id: 'r1',
      certPem: '-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n',
      active: true,
      notBefore: new Date(0),
      notAfter: new Date(0),
    },
  ],
};
const tagged = {
  lan: { Address: '10.0.1.1', Port: 8443 },
  wan: { Address: '192.0.2.1', Port: 443 },
};

type Json = Record<string, any>;

/** A gateway registration with these `Proxy.Config` keys (and `extra` fields). */
const gateway = (config: Json | undefined, extra: Json = {}): Json => ({
  ID: 'gw',
  Name: 'mesh-gateway',
  Kind: 'mesh-gateway',
  Address: '10.0.1.1',
  Port: 8443,
  TaggedAddresses: tagged,
  ...(config && { Proxy: { Config: config } }),
  ...extra,
});

/**
 * Registers the gateway (plus a service with a sidecar, and another datacenter's gateway, so a
 * chain serves both sides), builds its resources.
 */
function listenersOf(registration: Json): { names: string[]; listeners: Json[] } {
  const parsed = parseRegistration(registration, { datacenter: 'dc1' });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  const c = new FakeCatalog('dc1');
  c.upsert({ id: 'api-1', name: 'api', port: 9090 });
  c.upsert({
    id: 'api-1-sidecar-proxy',
    name: 'api-sidecar-proxy',
    kind: 'connect-proxy',
    address: '10.0.0.4',
    port: 21000,
    proxy: {
      destinationServiceName: 'api',
      destinationServiceId: 'api-1',
      localServiceAddress: '127.0.0.1',
      localServicePort: 9090,
      meshGateway: { mode: '' },
      upstreams: [],
    },
  });
  c.upsert({
    id: 'gw-dc2',
    name: 'mesh-gateway',
    kind: 'mesh-gateway',
    datacenter: 'dc2',
    address: '10.9.1.1',
    port: 8443,
    taggedAddresses: { wan: { address: '198.51.100.7', port: 443 } },
  });
  const { checks: _, ...instance } = parsed.value.service;
  c.upsert(instance);
  const ctx: BuildContext = {
    catalog: c,
    datacenter: 'dc1',
    trustDomain: td,
    roots,
    peerTrustDomain: () => undefined,
  };
  const cache = new XdsCache();
  const resources = resourcesFromSnapshot(
    buildMeshGatewaySnapshot(c.instance('gw')!, ctx).snapshot,
  ).map((s) => {
    const typeName = s.typeUrl.slice(s.typeUrl.lastIndexOf('/') + 1);
    const bytes = cache.encode(s.build()).bytes;
    expect(validateMessage(typeName, bytes), s.name).toEqual([]);
    return {
      typeUrl: s.typeUrl,
      name: s.name,
      message: messageTypeRegistry.get(typeName)!.decode(bytes) as Record<string, unknown>,
    };
  });
  expect(lintResources(resources)).toEqual([]);
  const listeners = resources
    .filter((r) => r.typeUrl === TypeUrl.listener)
    .map((r) => r.message as Json);
  const addresses = listeners.map(
    (l) => `${l.address.address.value.address}:${l.address.address.value.portSpecifier.value}`,
  );
  expect(new Set(addresses).size, 'two listeners on one address').toBe(addresses.length);
  return { names: listeners.map((l) => l.name), listeners };
}

/** Everything but name and address: what the listener does. */
const behaviour = (l: Json): unknown => ({ ...l, name: undefined, address: undefined });

describe('mesh gateway bind variants', () => {
  it('without Proxy.Config: one default listener on the LAN address', () => {
    expect(listenersOf(gateway(undefined)).names).toEqual(['default:10.0.1.1:8443']);
    expect(listenersOf(gateway({})).names).toEqual(['default:10.0.1.1:8443']);
  });

  it('bind_tagged_addresses: a listener on each tagged address too; the LAN one shares the default address and is collapsed', () => {
    const { names, listeners } = listenersOf(
      gateway({ envoy_mesh_gateway_bind_tagged_addresses: true }),
    );
    expect(names).toEqual(['default:10.0.1.1:8443', 'wan:192.0.2.1:443']);
    // The remote datacenter's chain serves both sides, so both listeners route alike here.
    expect(listeners[0]!.filterChains).toHaveLength(1);
    expect(behaviour(listeners[1]!)).toEqual(behaviour(listeners[0]!));
  });

  it('bind_tagged_addresses with LAN and WAN on one address and port: one listener, default', () => {
    const same = { lan: tagged.lan, wan: tagged.lan };
    expect(
      listenersOf(
        gateway({ envoy_mesh_gateway_bind_tagged_addresses: true }, { TaggedAddresses: same }),
      ).names,
    ).toEqual(['default:10.0.1.1:8443']);
    expect(
      listenersOf(
        gateway(
          {
            envoy_mesh_gateway_bind_tagged_addresses: true,
            envoy_mesh_gateway_no_default_bind: true,
          },
          { TaggedAddresses: same },
        ),
      ).names,
    ).toEqual(['lan:10.0.1.1:8443']);
  });

  it('no_default_bind with bind_tagged_addresses: only the lan and wan listeners', () => {
    const { names } = listenersOf(
      gateway({
        envoy_mesh_gateway_no_default_bind: true,
        envoy_mesh_gateway_bind_tagged_addresses: true,
      }),
    );
    expect(names).toEqual(['lan:10.0.1.1:8443', 'wan:192.0.2.1:443']);
  });

  it('bind_addresses: one listener per entry, named by its key, sorted by name; a duplicate address keeps the first name', () => {
    const { names } = listenersOf(
      gateway({
        envoy_mesh_gateway_bind_addresses: {
          zeta: { Address: '198.18.2.3', Port: 8080 },
          v6: { Address: '2001:db8::ff', Port: 9999 },
          again: { Address: '10.0.1.1', Port: 8443 },
        },
      }),
    );
    // `again` sorts before `default` and binds the same address: it is kept, `default` is dropped
    // (Consul's order).
    expect(names).toEqual(['again:10.0.1.1:8443', 'v6:2001:db8::ff:9999', 'zeta:198.18.2.3:8080']);
  });

  it('reads the current envoy_gateway_* names too, which win over the deprecated ones', () => {
    const { names } = listenersOf(
      gateway({
        envoy_gateway_bind_tagged_addresses: true,
        envoy_mesh_gateway_bind_tagged_addresses: false,
        envoy_gateway_no_default_bind: true,
      }),
    );
    expect(names).toEqual(['lan:10.0.1.1:8443', 'wan:192.0.2.1:443']);
  });
});
