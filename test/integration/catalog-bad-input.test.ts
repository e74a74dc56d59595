import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../helpers/api-server.js';
import { cleanupProcesses } from '../helpers/process.js';

/**
 * Every malformed write gets a 400 whose `field` is the JSON path of the offending field and whose
 * `error` says what is allowed there, and changes nothing: every listing is byte-identical after.
 */
let api: ApiServer;
beforeAll(async () => {
  api = await startApiServer();
  const setup = [
    [
      '/v1/agent/service/register',
      {
        Name: 'web',
        Address: '10.0.0.5',
        Port: 8080,
        Check: { CheckID: 'web-alive', TTL: '10s' },
        Connect: { SidecarService: {} },
      },
    ],
    ['/v1/config', { Kind: 'service-defaults', Name: 'web', Protocol: 'http' }],
    [
      '/v1/config',
      { Kind: 'service-intentions', Name: 'web', Sources: [{ Name: 'api', Action: 'allow' }] },
    ],
  ] as const;
  for (const [path, body] of setup) expect((await api.call('PUT', path, body)).status).toBe(200);
});
afterAll(async () => {
  await api.stop();
  await cleanupProcesses();
});

const kinds = [
  'proxy-defaults',
  'service-defaults',
  'mesh',
  'service-intentions',
  'exported-services',
];
async function everything(): Promise<string> {
  const paths = [
    '/v1/catalog/services',
    '/v1/catalog/service/web',
    '/v1/catalog/service/web-sidecar-proxy',
    '/v1/health/service/web',
    '/v1/health/service/x',
    '/v1/catalog/service/x',
  ];
  const texts = await Promise.all(
    [...paths, ...kinds.map((k) => `/v1/config/${k}`)].map(
      async (p) => `${p} ${(await api.call('GET', p)).text}`,
    ),
  );
  return texts.join('\n');
}

const proxy = (p: Record<string, unknown>) => ({
  Name: 'x-proxy',
  Kind: 'connect-proxy',
  Address: '10.0.0.9',
  Port: 21500,
  Proxy: { DestinationServiceName: 'x', LocalServicePort: 80, ...p },
});
const sidecar = (sc: Record<string, unknown>, svc: Record<string, unknown> = {}) => ({
  Name: 'x',
  Address: '10.0.0.9',
  Port: 80,
  ...svc,
  Connect: { SidecarService: sc },
});
const up = (u: Record<string, unknown>) => ({ DestinationName: 'db', LocalBindPort: 9000, ...u });

/** [what, body, field, pattern the error must match] */
const badRegistrations: [string, unknown, string, RegExp][] = [
  ['no Name', { Port: 80 }, 'Name', /required/],
  ['uppercase Name', { Name: 'Web_1' }, 'Name', /lowercase letters, digits or "-"/],
  ['ID with a slash', { Name: 'x', ID: 'x/1' }, 'ID', /letters, digits, "\.", "_", ":" or "-"/],
  ['Port out of range', { Name: 'x', Port: 70000 }, 'Port', /integer 0-65535/],
  ['Port as a string', { Name: 'x', Port: '80' }, 'Port', /integer 0-65535/],
  [
    'unknown Kind',
    { Name: 'x', Kind: 'ingress-gateway' },
    'Kind',
    /one of "", "connect-proxy", "mesh-gateway"/,
  ],
  ['Tags not an array', { Name: 'x', Tags: 'a' }, 'Tags', /JSON array/],
  [
    'reserved Meta key',
    { Name: 'x', Meta: { 'consul-version': '1' } },
    'Meta.consul-version',
    /reserved/,
  ],
  [
    'consul-wan-federation on a service that is not a mesh gateway (only a gateway exposes servers)',
    { Name: 'x', Meta: { 'consul-wan-federation': '1' } },
    'Meta.consul-wan-federation',
    /reserved/,
  ],
  ['non-string Meta value', { Name: 'x', Meta: { a: 1 } }, 'Meta.a', /must be a string/],
  [
    'misspelt field',
    { Name: 'x', Adress: '10.0.0.1' },
    'Adress',
    /unknown field \(allowed here: ID, Name, Kind, Address/,
  ],
  ['bad Namespace', { Name: 'x', Namespace: 'Team A' }, 'Namespace', /lowercase/],
  [
    'other Datacenter for a service',
    { Name: 'x', Datacenter: 'dc2' },
    'Datacenter',
    /only mesh gateways/,
  ],
  [
    'TTL not a duration',
    { Name: 'x', Check: { TTL: '10 seconds' } },
    'Check.TTL',
    /duration like "10s"/,
  ],
  [
    'HTTP check',
    { Name: 'x', Check: { HTTP: 'http://x/health', Interval: '10s' } },
    'Check.HTTP',
    /TTL checks only/,
  ],
  [
    'bad check Status',
    { Name: 'x', Checks: [{ TTL: '5s' }, { TTL: '5s', Status: 'ok' }] },
    'Checks[1].Status',
    /one of "passing", "warning", "critical"/,
  ],
  [
    'check ID of another service',
    { Name: 'x', Check: { CheckID: 'web-alive', TTL: '5s' } },
    'Check.CheckID',
    /already a check of service "web"/,
  ],
  [
    'Proxy on a typical service',
    { Name: 'x', Proxy: { DestinationServiceName: 'y' } },
    'Proxy',
    /only allowed when Kind is "connect-proxy"/,
  ],
  [
    'connect-proxy without Proxy',
    { Name: 'x-proxy', Kind: 'connect-proxy', Address: '10.0.0.9', Port: 21500 },
    'Proxy',
    /required for Kind "connect-proxy"/,
  ],
  [
    'connect-proxy without Port',
    { ...proxy({}), Port: undefined },
    'Port',
    /required \(an integer 1-65535\)/,
  ],
  [
    'connect-proxy at a hostname',
    { ...proxy({}), Address: 'web.local' },
    'Address',
    /not an IP address/,
  ],
  [
    'connect-proxy without destination',
    proxy({ DestinationServiceName: undefined }),
    'Proxy.DestinationServiceName',
    /required/,
  ],
  [
    'upstream without DestinationName',
    proxy({ Upstreams: [up({ DestinationName: undefined })] }),
    'Proxy.Upstreams[0].DestinationName',
    /required/,
  ],
  [
    'upstream bind port 0',
    proxy({ Upstreams: [up({}), up({ DestinationName: 'api', LocalBindPort: 0 })] }),
    'Proxy.Upstreams[1].LocalBindPort',
    /integer 1-65535/,
  ],
  [
    'duplicate upstream bind',
    proxy({ Upstreams: [up({}), up({ DestinationName: 'api' })] }),
    'Proxy.Upstreams[1].LocalBindPort',
    /127\.0\.0\.1:9000 is already used by Proxy\.Upstreams\[0\]/,
  ],
  [
    "upstream on the proxy's own listener",
    proxy({ Upstreams: [up({ LocalBindAddress: '10.0.0.9', LocalBindPort: 21500 })] }),
    'Proxy.Upstreams[0].LocalBindPort',
    /10\.0\.0\.9:21500 is the proxy's own public listener/,
  ],
  [
    "sidecar upstream on the sidecar's listener",
    sidecar(
      { Port: 21700, Proxy: { Upstreams: [up({ LocalBindPort: 21700 })] } },
      { Address: '127.0.0.1' },
    ),
    'Connect.SidecarService.Proxy.Upstreams[0].LocalBindPort',
    /127\.0\.0\.1:21700 is the proxy's own public listener/,
  ],
  [
    'two upstreams of one destination',
    proxy({ Upstreams: [up({}), up({ LocalBindPort: 9001, Datacenter: 'dc1' })] }),
    'Proxy.Upstreams[1].DestinationName',
    /db \(namespace default, partition default, datacenter dc1\) is already the destination of Proxy\.Upstreams\[0\]/,
  ],
  [
    'two upstreams of one peer service',
    proxy({
      Upstreams: [
        up({ DestinationPeer: 'east' }),
        up({ DestinationPeer: 'east', LocalBindPort: 9001 }),
      ],
    }),
    'Proxy.Upstreams[1].DestinationName',
    /db \(namespace default, partition default, peer east\) is already the destination/,
  ],
  [
    'peer upstream with a partition',
    proxy({ Upstreams: [up({ DestinationPeer: 'east', DestinationPartition: 'p1' })] }),
    'Proxy.Upstreams[0].DestinationPartition',
    /must be empty when DestinationPeer is set/,
  ],
  [
    'bad mesh gateway mode',
    proxy({ Upstreams: [up({ MeshGateway: { Mode: 'both' } })] }),
    'Proxy.Upstreams[0].MeshGateway.Mode',
    /one of "", "none", "local", "remote"/,
  ],
  [
    'upstream Config',
    proxy({ Upstreams: [up({ Config: { protocol: 'http' } })] }),
    'Proxy.Upstreams[0].Config',
    /service-defaults or proxy-defaults/,
  ],
  [
    'gateway tagged address without port',
    {
      Name: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Address: '10.0.0.2',
      Port: 8443,
      TaggedAddresses: { wan: { Address: '1.2.3.4' } },
    },
    'TaggedAddresses.wan.Port',
    /required \(an integer 1-65535\)/,
  ],
  [
    'unknown tagged address',
    { Name: 'x', TaggedAddresses: { virtual: { Address: '1.2.3.4', Port: 1 } } },
    'TaggedAddresses.virtual',
    /allowed here: lan, wan/,
  ],
  [
    'sidecar upstream bound to a hostname',
    sidecar({ Proxy: { Upstreams: [up({ LocalBindAddress: 'localhost' })] } }),
    'Connect.SidecarService.Proxy.Upstreams[0].LocalBindAddress',
    /not an IP address/,
  ],
  [
    'sidecar naming its destination',
    sidecar({ Proxy: { DestinationServiceName: 'y' } }),
    'Connect.SidecarService.Proxy.DestinationServiceName',
    /not allowed in Connect\.SidecarService/,
  ],
  [
    'sidecar of a service without port',
    sidecar({}, { Port: 0 }),
    'Connect.SidecarService.Proxy.LocalServicePort',
    /required \(an integer 1-65535\)/,
  ],
  [
    'sidecar Port as a string',
    sidecar({ Port: 'auto' }),
    'Connect.SidecarService.Port',
    /integer 1-65535/,
  ],
  [
    'sidecar of a hostname service',
    sidecar({}, { Address: 'x.local' }),
    'Connect.SidecarService.Address',
    /required \(an IP address\)/,
  ],
];

const badConfigEntries: [string, unknown, string, RegExp][] = [
  ['no Kind', { Name: 'x' }, 'Kind', /required \(one of "proxy-defaults"/],
  [
    'unknown Kind',
    { Kind: 'ingress-gateway', Name: 'x' },
    'Kind',
    /is not one of "proxy-defaults", "service-defaults", "mesh"/,
  ],
  [
    'proxy-defaults not global',
    { Kind: 'proxy-defaults', Name: 'default' },
    'Name',
    /must be "global"/,
  ],
  [
    'proxy-defaults bad protocol',
    { Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'http3' } },
    'Config.protocol',
    /one of "tcp", "http", "http2", "grpc"/,
  ],
  [
    'proxy-defaults unknown Config key',
    { Kind: 'proxy-defaults', Name: 'global', Config: { envoy_extra: 1 } },
    'Config.envoy_extra',
    /allowed here: protocol/,
  ],
  [
    'service-defaults without Name',
    { Kind: 'service-defaults', Protocol: 'http' },
    'Name',
    /required/,
  ],
  [
    'service-defaults bad Protocol',
    { Kind: 'service-defaults', Name: 'web', Protocol: 'udp' },
    'Protocol',
    /one of "tcp", "http", "http2", "grpc"/,
  ],
  [
    'service-defaults bad mesh gateway',
    { Kind: 'service-defaults', Name: 'web', MeshGateway: { Mode: 'both' } },
    'MeshGateway.Mode',
    /one of "", "none", "local", "remote"/,
  ],
  [
    'service-defaults other namespace',
    { Kind: 'service-defaults', Name: 'web', Namespace: 'team-a' },
    'Namespace',
    /only "default"/,
  ],
  [
    'service-defaults unknown field',
    { Kind: 'service-defaults', Name: 'web', UpstreamConfig: {} },
    'UpstreamConfig',
    /unknown field \(allowed here: .*Protocol, MeshGateway\)/,
  ],
  [
    'mesh bad default action',
    { Kind: 'mesh', DefaultIntentionAction: 'reject' },
    'DefaultIntentionAction',
    /one of "allow", "deny"/,
  ],
  [
    'mesh non-boolean peering flag',
    { Kind: 'mesh', Peering: { PeerThroughMeshGateways: 'yes' } },
    'Peering.PeerThroughMeshGateways',
    /true or false/,
  ],
  ['mesh other name', { Kind: 'mesh', Name: 'other' }, 'Name', /must be "mesh"/],
  [
    'intentions without Sources',
    { Kind: 'service-intentions', Name: 'web' },
    'Sources',
    /required/,
  ],
  [
    'intentions bad Name',
    { Kind: 'service-intentions', Name: 'Web!', Sources: [] },
    'Name',
    /"\*" or 1-63 lowercase/,
  ],
  [
    'intention bad Action',
    { Kind: 'service-intentions', Name: 'web', Sources: [{ Name: 'api', Action: 'permit' }] },
    'Sources[0].Action',
    /one of "allow", "deny"/,
  ],
  [
    'intention without Action',
    { Kind: 'service-intentions', Name: 'web', Sources: [{ Name: 'api' }] },
    'Sources[0].Action',
    /required/,
  ],
  [
    'duplicate intention source',
    {
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [
        { Name: 'api', Action: 'allow' },
        { Name: 'api', Action: 'deny' },
      ],
    },
    'Sources[1]',
    /duplicate of Sources\[0\]/,
  ],
  [
    'intention source with Peer and Partition',
    {
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [{ Name: 'api', Peer: 'east', Partition: 'p', Action: 'allow' }],
    },
    'Sources[0].Partition',
    /must be empty when Peer is set/,
  ],
  [
    'L7 intention with an Action too',
    {
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [
        {
          Name: 'api',
          Action: 'allow',
          Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }],
        },
      ],
    },
    'Sources[0].Action',
    /must be omitted when Permissions are set/,
  ],
  [
    'neither Action nor Permissions',
    { Kind: 'service-intentions', Name: 'web', Sources: [{ Name: 'api', Permissions: [] }] },
    'Sources[0].Action',
    /or give Permissions/,
  ],
  [
    'L7 permission without HTTP',
    {
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [{ Name: 'api', Permissions: [{ Action: 'allow' }] }],
    },
    'Sources[0].Permissions[0].HTTP',
    /required/,
  ],
  [
    'L7 permission with an empty HTTP',
    {
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [{ Name: 'api', Permissions: [{ Action: 'deny', HTTP: {} }] }],
    },
    'Sources[0].Permissions[0].HTTP',
    /must not be empty/,
  ],
  [
    'L7 path not starting with /',
    {
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [{ Name: 'api', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: 'api' } }] }],
    },
    'Sources[0].Permissions[0].HTTP.PathPrefix',
    /starting with "\/"/,
  ],
  [
    'L7 two path matches',
    {
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [
        {
          Name: 'api',
          Permissions: [{ Action: 'allow', HTTP: { PathExact: '/a', PathPrefix: '/b' } }],
        },
      ],
    },
    'Sources[0].Permissions[0].HTTP',
    /at most one of PathExact, PathPrefix and PathRegex/,
  ],
  [
    'L7 regex RE2 refuses',
    {
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [
        { Name: 'api', Permissions: [{ Action: 'allow', HTTP: { PathRegex: '/v(?=2)' } }] },
      ],
    },
    'Sources[0].Permissions[0].HTTP.PathRegex',
    /not a valid RE2 regex/,
  ],
  [
    'L7 header with two matches',
    {
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [
        {
          Name: 'api',
          Permissions: [
            { Action: 'allow', HTTP: { Header: [{ Name: 'x-team', Exact: 'a', Prefix: 'b' }] } },
          ],
        },
      ],
    },
    'Sources[0].Permissions[0].HTTP.Header[0]',
    /exactly one of Present, Exact, Prefix, Suffix and Regex/,
  ],
  [
    'L7 unknown method',
    {
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [
        { Name: 'api', Permissions: [{ Action: 'allow', HTTP: { Methods: ['GET', 'FETCH'] } }] },
      ],
    },
    'Sources[0].Permissions[0].HTTP.Methods[1]',
    /must be one of GET/,
  ],
  [
    'L7 permission with JWT',
    {
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [
        { Name: 'api', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' }, JWT: {} }] },
      ],
    },
    'Sources[0].Permissions[0].JWT',
    /not supported/,
  ],
  [
    'L7 intention for a tcp service',
    {
      Kind: 'service-intentions',
      Name: 'db',
      Sources: [{ Name: 'api', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }] }],
    },
    'Sources[0].Permissions',
    /has protocol "tcp": write a service-defaults for "db" with Protocol "http"/,
  ],
  [
    'L7 intention for every destination',
    {
      Kind: 'service-intentions',
      Name: '*',
      Sources: [{ Name: 'api', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }] }],
    },
    'Sources[0].Permissions',
    /destination Name is "\*"/,
  ],
  [
    'exported-services other partition',
    { Kind: 'exported-services', Name: 'part1', Services: [] },
    'Name',
    /must be "default"/,
  ],
  [
    'export to a partition',
    {
      Kind: 'exported-services',
      Name: 'default',
      Services: [{ Name: 'db', Consumers: [{ Partition: 'p1' }] }],
    },
    'Services[0].Consumers[0].Partition',
    /exports to cluster peers only/,
  ],
  [
    'a consumer that is both a peer and a sameness group',
    {
      Kind: 'exported-services',
      Name: 'default',
      Services: [{ Name: 'db', Consumers: [{ Peer: 'east', SamenessGroup: 'g' }] }],
    },
    'Services[0].Consumers[0].Peer',
    /cannot be set together with SamenessGroup/,
  ],
  [
    'export without consumers',
    { Kind: 'exported-services', Name: 'default', Services: [{ Name: 'db', Consumers: [] }] },
    'Services[0].Consumers',
    /at least one \{Peer\}/,
  ],
  [
    'consumer without Peer',
    { Kind: 'exported-services', Name: 'default', Services: [{ Name: 'db', Consumers: [{}] }] },
    'Services[0].Consumers[0].Peer',
    /required/,
  ],
  [
    'duplicate exported service',
    {
      Kind: 'exported-services',
      Name: 'default',
      Services: [
        { Name: 'db', Consumers: [{ Peer: 'a' }] },
        { Name: 'db', Consumers: [{ Peer: 'b' }] },
      ],
    },
    'Services[1]',
    /duplicate of Services\[0\]/,
  ],
];

describe('malformed writes', () => {
  it('has the promised number of cases', () => {
    expect(badRegistrations.length).toBeGreaterThanOrEqual(15);
    expect(badConfigEntries.length).toBeGreaterThanOrEqual(15);
  });

  it.each(badRegistrations)(
    'registration: %s → 400 naming the field, nothing changes',
    async (_what, body, field, error) => {
      const before = await everything();
      const res = await api.call('PUT', '/v1/agent/service/register', body);
      expect(res.status).toBe(400);
      expect(res.json.field).toBe(field);
      expect(res.json.error).toMatch(error);
      expect(res.json.error.startsWith(`${field}: `)).toBe(true);
      expect(await everything()).toBe(before);
    },
  );

  it.each(badConfigEntries)(
    'config entry: %s → 400 naming the field, nothing changes',
    async (_what, body, field, error) => {
      const before = await everything();
      const res = await api.call('PUT', '/v1/config', body);
      expect(res.status).toBe(400);
      expect(res.json.field).toBe(field);
      expect(res.json.error).toMatch(error);
      expect(await everything()).toBe(before);
    },
  );

  it('bodies that are not JSON objects → 400', async () => {
    const before = await everything();
    for (const [path, body] of [
      ['/v1/agent/service/register', '[1]'],
      ['/v1/agent/service/register', '{"Name":'],
      ['/v1/config', '"x"'],
      ['/v1/agent/service/register', ''],
    ]) {
      const res = await api.call('PUT', path!, body, { 'content-type': 'application/json' });
      expect(res.status, `${path} ${body}`).toBe(400);
      expect(res.json.error, `${path} ${body}`).toMatch(/JSON/);
    }
    expect(await everything()).toBe(before);
  });
});
