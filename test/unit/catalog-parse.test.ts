import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDurationSeconds } from '../../src/catalog/checks.js';
import { parseConfigEntry } from '../../src/catalog/config-entries.js';
import { type Registration, parseRegistration } from '../../src/catalog/registration.js';

const ctx = { datacenter: 'dc1' };

function registration(input: unknown): Registration {
  const parsed = parseRegistration(input, ctx);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return parsed.value;
}

function errorsOf(input: unknown): string[] {
  const parsed = parseRegistration(input, ctx);
  return parsed.ok ? [] : parsed.error.map((e) => `${e.field}: ${e.problem}`);
}

describe('parseRegistration', () => {
  it('fills Consul defaults', () => {
    const { service, sidecar } = registration({ Name: 'web' });
    expect(sidecar).toBeUndefined();
    expect(service).toEqual({
      id: 'web',
      name: 'web',
      kind: 'typical',
      address: '',
      port: 0,
      tags: [],
      meta: {},
      namespace: 'default',
      partition: 'default',
      datacenter: 'dc1',
      taggedAddresses: {},
      proxy: undefined,
      checks: [],
    });
  });

  it('builds the Connect sidecar like Consul: ID, name, address, proxy destination and local port', () => {
    const { service, sidecar } = registration({
      ID: 'web-1',
      Name: 'web',
      Address: '10.0.0.5',
      Port: 8080,
      Tags: ['a'],
      Connect: {
        SidecarService: {
          Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 9191, Datacenter: 'dc2' }] },
        },
      },
    });
    expect(service.id).toBe('web-1');
    expect(sidecar!.port).toBeUndefined();
    expect(sidecar!.instance).toMatchObject({
      id: 'web-1-sidecar-proxy',
      name: 'web-sidecar-proxy',
      kind: 'connect-proxy',
      address: '10.0.0.5',
      tags: ['a'],
    });
    expect(sidecar!.instance.proxy).toEqual({
      destinationServiceName: 'web',
      destinationServiceId: 'web-1',
      localServiceAddress: '127.0.0.1',
      localServicePort: 8080,
      upstreams: [
        {
          destinationName: 'db',
          destinationNamespace: 'default',
          destinationPartition: 'default',
          destinationPeer: '',
          datacenter: 'dc2',
          localBindAddress: '127.0.0.1',
          localBindPort: 9191,
          meshGateway: { mode: '' },
        },
      ],
      meshGateway: { mode: '' },
    });
    expect(sidecar!.instance.checks.map((c) => [c.checkId, c.aliasOf])).toEqual([
      ['service:web-1-sidecar-proxy:2', 'web-1'],
    ]);
    expect(
      registration({
        Name: 'web',
        Address: '10.0.0.5',
        Port: 1,
        Connect: { SidecarService: { Port: 21999 } },
      }).sidecar!.port,
    ).toBe(21999);
  });

  it('takes one upstream per destination: the same service in another datacenter, peer or namespace is another destination', () => {
    const up = (port: number, u: Record<string, unknown> = {}) => ({
      DestinationName: 'db',
      LocalBindPort: port,
      ...u,
    });
    const sidecar = (upstreams: unknown[], extra: Record<string, unknown> = {}) => ({
      Name: 'web',
      Address: '127.0.0.1',
      Port: 80,
      Connect: { SidecarService: { ...extra, Proxy: { Upstreams: upstreams } } },
    });
    const many = [
      up(9001),
      up(9002, { Datacenter: 'dc2' }),
      up(9003, { DestinationPeer: 'east' }),
      up(9004, { DestinationNamespace: 'team-a' }),
    ];
    expect(registration(sidecar(many)).sidecar!.instance.proxy!.upstreams).toHaveLength(4);
    // Datacenter "" is this server's: the same cluster as naming dc1.
    expect(errorsOf(sidecar([up(9001), up(9002, { Datacenter: 'dc1' })]))).toEqual([
      'Connect.SidecarService.Proxy.Upstreams[1].DestinationName: db (namespace default, partition default, datacenter dc1) is already the destination of Connect.SidecarService.Proxy.Upstreams[0]; one upstream per destination',
    ]);
    // The sidecar's own public listener is no upstream's; on another address the port is free.
    expect(errorsOf(sidecar([up(21500)], { Port: 21500 }))).toEqual([
      "Connect.SidecarService.Proxy.Upstreams[0].LocalBindPort: 127.0.0.1:21500 is the proxy's own public listener (its Address and Port); give the upstream another LocalBindPort",
    ]);
    expect(
      errorsOf(sidecar([up(21500, { LocalBindAddress: '127.0.0.2' })], { Port: 21500 })),
    ).toEqual([]);
  });

  it('names checks service:<id>, or service:<id>:<n> when there are several; TTL checks start critical', () => {
    expect(registration({ Name: 'web', Check: { TTL: '10s' } }).service.checks).toEqual([
      expect.objectContaining({
        checkId: 'service:web',
        name: "Service 'web' check",
        status: 'critical',
        ttlSeconds: 10,
        serviceId: 'web',
      }),
    ]);
    const many = registration({
      Name: 'web',
      Checks: [
        { TTL: '1m' },
        { TTL: '1m30s', Status: 'passing', CheckID: 'mine' },
        { TTL: '500ms' },
      ],
    });
    expect(many.service.checks.map((c) => [c.checkId, c.ttlSeconds, c.status])).toEqual([
      ['service:web:1', 60, 'critical'],
      ['mine', 90, 'passing'],
      ['service:web:3', 0.5, 'critical'],
    ]);
  });

  it('accepts remote-datacenter mesh gateways with tagged addresses', () => {
    const { service } = registration({
      Name: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Datacenter: 'dc2',
      Address: '10.1.0.1',
      Port: 8443,
      TaggedAddresses: {
        lan: { Address: '10.1.0.1', Port: 8443 },
        wan: { Address: '203.0.113.7', Port: 443 },
      },
    });
    expect(service).toMatchObject({
      kind: 'mesh-gateway',
      datacenter: 'dc2',
      taggedAddresses: { wan: { address: '203.0.113.7', port: 443 } },
    });
  });

  it('reports every problem at once, each with its path', () => {
    expect(errorsOf({ Name: 'Web', Port: -1, Tags: [1], Check: { TTL: 'x' } })).toEqual([
      'Name: "Web" is not allowed: 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit',
      'Port: must be an integer 0-65535 (got -1)',
      'Tags[0]: must be a string',
      'Check.TTL: "x" is not allowed: a duration like "10s", "1m" or "1m30s", from 100ms to 24h',
    ]);
    expect(errorsOf('nope')).toEqual([': must be a JSON object']);
  });

  it('never throws, whatever the input', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        parseRegistration(value, ctx);
        parseConfigEntry(value);
      }),
      { numRuns: 500 },
    );
    const valid = {
      Name: 'web',
      Address: '10.0.0.1',
      Port: 80,
      Connect: {
        SidecarService: { Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 1 }] } },
      },
    };
    const keys = [
      'Name',
      'Address',
      'Port',
      'Connect',
      'Check',
      'Checks',
      'Proxy',
      'TaggedAddresses',
      'Meta',
      'Kind',
    ];
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.jsonValue(), (key, value) => {
        const result = parseRegistration({ ...valid, [key]: value }, ctx);
        if (!result.ok) expect(result.error.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });
});

describe('parseDurationSeconds', () => {
  it('reads Go durations', () => {
    expect(parseDurationSeconds('10s')).toBe(10);
    expect(parseDurationSeconds('1h2m3s')).toBe(3723);
    expect(parseDurationSeconds('250ms')).toBe(0.25);
    for (const bad of ['', '10', 's', '10 s', '-1s', '1d'])
      expect(parseDurationSeconds(bad), bad).toBeUndefined();
  });
});

describe('parseConfigEntry', () => {
  it('fills defaults per kind', () => {
    const parse = (v: unknown) => {
      const r = parseConfigEntry(v);
      if (!r.ok) throw new Error(JSON.stringify(r.error));
      return r.value;
    };
    expect(parse({ Kind: 'service-defaults', Name: 'web' })).toEqual({
      kind: 'service-defaults',
      name: 'web',
      namespace: 'default',
      partition: 'default',
      protocol: 'tcp',
      meshGateway: { mode: '' },
    });
    expect(parse({ Kind: 'proxy-defaults' })).toEqual({
      kind: 'proxy-defaults',
      name: 'global',
      config: {},
      meshGateway: { mode: '' },
    });
    expect(parse({ Kind: 'mesh', AllowEnablingPermissiveMutualTLS: true })).toEqual({
      kind: 'mesh',
      name: 'mesh',
      defaultIntentionAction: 'allow',
      peering: { peerThroughMeshGateways: false },
    });
    expect(
      parse({
        Kind: 'service-intentions',
        Name: '*',
        Sources: [{ Name: 'api', Peer: 'east', Action: 'deny', Type: 'consul' }],
      }),
    ).toEqual({
      kind: 'service-intentions',
      name: '*',
      namespace: 'default',
      partition: 'default',
      sources: [
        { name: 'api', namespace: 'default', partition: 'default', peer: 'east', action: 'deny' },
      ],
    });
    expect(
      parse({
        Kind: 'exported-services',
        Name: 'default',
        Services: [{ Name: '*', Consumers: [{ Peer: 'east' }] }],
        CreateIndex: 4,
        ModifyIndex: 5,
      }),
    ).toEqual({
      kind: 'exported-services',
      name: 'default',
      services: [{ name: '*', namespace: 'default', consumers: [{ peer: 'east' }] }],
    });
  });
});

describe('mesh gateway Proxy.Config (where its listeners bind)', () => {
  const tagged = {
    lan: { Address: '10.0.1.1', Port: 8443 },
    wan: { Address: '192.0.2.1', Port: 443 },
  };
  const gateway = (
    config: Record<string, unknown> | undefined,
    extra: Record<string, unknown> = {},
  ) => ({
    ID: 'gw',
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Address: '10.0.1.1',
    Port: 8443,
    TaggedAddresses: tagged,
    ...(config && { Proxy: { Config: config } }),
    ...extra,
  });

  it('keeps the typed config on the instance, and nothing when it asks for the default', () => {
    const parse = (g: Record<string, unknown>) => {
      const r = parseRegistration(g, ctx);
      return r.ok ? r.value.service : undefined;
    };
    expect(
      parse(
        gateway({
          envoy_mesh_gateway_bind_addresses: {
            b: { Address: '10.0.0.2', Port: 2 },
            a: { Address: '10.0.0.1', Port: 1 },
          },
        }),
      )?.gatewayConfig,
    ).toEqual({
      bindTaggedAddresses: false,
      noDefaultBind: false,
      bindAddresses: [
        { name: 'a', address: '10.0.0.1', port: 1 },
        { name: 'b', address: '10.0.0.2', port: 2 },
      ],
    });
    expect(parse(gateway({ envoy_mesh_gateway_bind_tagged_addresses: false }))).not.toHaveProperty(
      'gatewayConfig',
    );
    expect(parse(gateway(undefined))).not.toHaveProperty('gatewayConfig');
  });

  it.each([
    [
      'a non-boolean flag',
      { envoy_mesh_gateway_bind_tagged_addresses: 'yes' },
      'Proxy.Config.envoy_mesh_gateway_bind_tagged_addresses: must be true or false (got "yes")',
    ],
    [
      'a non-boolean no_default_bind',
      { envoy_gateway_no_default_bind: 1 },
      'Proxy.Config.envoy_gateway_no_default_bind: must be true or false (got 1)',
    ],
    [
      'a bad port',
      { envoy_mesh_gateway_bind_addresses: { foo: { Address: '10.0.0.1', Port: 70000 } } },
      'Proxy.Config.envoy_mesh_gateway_bind_addresses.foo.Port: must be an integer 1-65535 (got 70000)',
    ],
    [
      'a missing port',
      { envoy_mesh_gateway_bind_addresses: { foo: { Address: '10.0.0.1' } } },
      'Proxy.Config.envoy_mesh_gateway_bind_addresses.foo.Port: required (an integer 1-65535)',
    ],
    [
      'a hostname to bind',
      { envoy_mesh_gateway_bind_addresses: { foo: { Address: 'gw.example.com', Port: 1 } } },
      'Proxy.Config.envoy_mesh_gateway_bind_addresses.foo.Address: "gw.example.com" is not an IP address',
    ],
    [
      'an unknown address field',
      { envoy_mesh_gateway_bind_addresses: { foo: { Address: '10.0.0.1', Port: 1, port: 2 } } },
      'Proxy.Config.envoy_mesh_gateway_bind_addresses.foo.port: unknown field (allowed here: Address, Port)',
    ],
    [
      'a bad listener name',
      { envoy_mesh_gateway_bind_addresses: { 'a:b': { Address: '10.0.0.1', Port: 1 } } },
      'Proxy.Config.envoy_mesh_gateway_bind_addresses.a:b: the listener name must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit',
    ],
    [
      'bind addresses not an object',
      { envoy_mesh_gateway_bind_addresses: [] },
      'Proxy.Config.envoy_mesh_gateway_bind_addresses: must be a JSON object like {"<listener name>": {"Address": "<IP>", "Port": <port>}}',
    ],
    [
      'no listener left',
      { envoy_mesh_gateway_no_default_bind: true },
      'Proxy.Config.envoy_mesh_gateway_no_default_bind: leaves the gateway no listener: also set envoy_mesh_gateway_bind_tagged_addresses to true (with TaggedAddresses) or list envoy_mesh_gateway_bind_addresses',
    ],
  ])('%s', (_, config, error) => {
    expect(errorsOf(gateway(config))).toEqual([error]);
  });

  it('an unknown Config key lists the supported ones; other Proxy fields are not for gateways', () => {
    expect(errorsOf(gateway({ connect_timeout_ms: 1000 }))).toEqual([
      expect.stringMatching(
        /^Proxy\.Config\.connect_timeout_ms: unknown field \(allowed here: envoy_gateway_bind_tagged_addresses, .*envoy_mesh_gateway_bind_addresses\)$/,
      ),
    ]);
    expect(errorsOf(gateway(undefined, { Proxy: { Upstreams: [] } }))).toEqual([
      'Proxy.Upstreams: unknown field (allowed here: Config)',
    ]);
  });

  it('no_default_bind with tagged addresses to bind but none registered leaves no listener either', () => {
    expect(
      errorsOf(
        gateway(
          {
            envoy_mesh_gateway_no_default_bind: true,
            envoy_mesh_gateway_bind_tagged_addresses: true,
          },
          { TaggedAddresses: undefined },
        ),
      ),
    ).toEqual([
      expect.stringMatching(
        /^Proxy\.Config\.envoy_mesh_gateway_no_default_bind: leaves the gateway no listener/,
      ),
    ]);
  });

  it('binding tagged addresses needs an IP WAN address (a hostname is fine otherwise)', () => {
    const wanHost = { TaggedAddresses: { wan: { Address: 'gw.example.com', Port: 443 } } };
    expect(errorsOf(gateway(undefined, wanHost))).toEqual([]);
    expect(errorsOf(gateway({ envoy_gateway_bind_tagged_addresses: true }, wanHost))).toEqual([
      'TaggedAddresses.wan.Address: must be an IP address when Proxy.Config.envoy_gateway_bind_tagged_addresses is true: the gateway binds a listener to it (got "gw.example.com")',
    ]);
  });

  it('Proxy stays refused on a typical service', () => {
    expect(
      errorsOf({ Name: 'web', Proxy: { Config: { envoy_mesh_gateway_no_default_bind: true } } }),
    ).toEqual([
      'Proxy: only allowed when Kind is "connect-proxy" or "mesh-gateway" (to give a service a sidecar, use Connect.SidecarService)',
    ]);
  });
});
