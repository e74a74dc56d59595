/**
 * Where a server dials another datacenter's servers for a forwarded request (docs/architecture.md
 * §6c): only mesh gateways, ours first.
 */
import { describe, expect, it } from 'vitest';
import { forwardDialAddresses } from '../../src/federation/forwarder.js';
import { FakeCatalog } from '../helpers/fake-catalog.js';

function options(withOwnGateway: boolean) {
  const catalog = new FakeCatalog('dc2');
  if (withOwnGateway)
    catalog.upsert({
      id: 'gw',
      name: 'mesh-gateway',
      kind: 'mesh-gateway',
      meta: { 'consul-wan-federation': '1' },
      taggedAddresses: {
        lan: { address: '10.2.0.1', port: 8443 },
        wan: { address: '203.0.113.2', port: 443 },
      },
    });
  // A gateway that does not expose servers is never dialled.
  catalog.upsert({ id: 'plain', name: 'mesh-gateway', kind: 'mesh-gateway', port: 9443 });
  const states = new Map([
    [
      'dc3',
      { datacenter: 'dc3', meshGateways: [{ address: '203.0.113.3', port: 443 }], updatedAt: 1 },
    ],
  ]);
  return {
    datacenter: 'dc2',
    primary: 'dc1',
    nodeName: 'server-1',
    primaryGateways: ['203.0.113.1:443'],
    catalog,
    states: { get: (dc: string) => states.get(dc) },
    ca: {} as never,
  };
}

describe('forwardDialAddresses', () => {
  it("dials our exposing gateway's LAN side first, then the target's gateways", () => {
    expect(forwardDialAddresses(options(true), 'dc1')).toEqual([
      '10.2.0.1:8443',
      '203.0.113.1:443',
    ]);
    expect(forwardDialAddresses(options(true), 'dc3')).toEqual([
      '10.2.0.1:8443',
      '203.0.113.3:443',
    ]);
  });

  it('without a gateway of ours: --primary-gateways for the primary, federation states for others', () => {
    expect(forwardDialAddresses(options(false), 'dc1')).toEqual(['203.0.113.1:443']);
    expect(forwardDialAddresses(options(false), 'dc3')).toEqual(['203.0.113.3:443']);
    expect(forwardDialAddresses(options(false), 'dc4')).toEqual([]);
  });
});
