import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { CatalogEvent } from '../../src/catalog/types.js';
import { type ApiServer, startApiServer } from '../helpers/api-server.js';
import { cleanupProcesses } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

const servers: ApiServer[] = [];
async function start(opts: Parameters<typeof startApiServer>[0] = {}): Promise<ApiServer> {
  const s = await startApiServer(opts);
  servers.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
afterAll(cleanupProcesses);

const web = {
  Name: 'web',
  Address: '10.0.0.5',
  Port: 8080,
  Tags: ['v1'],
  Meta: { version: '1' },
  Check: { TTL: '30s' },
  Connect: {
    SidecarService: {
      Proxy: {
        Upstreams: [
          { DestinationName: 'db', LocalBindPort: 9191 },
          {
            DestinationName: 'api',
            DestinationPeer: 'east',
            LocalBindPort: 9192,
            MeshGateway: { Mode: 'local' },
          },
        ],
      },
    },
  },
};

describe('catalog over HTTP', () => {
  it('registers a service with a Connect sidecar; catalog and health show both in Consul shapes; deregister removes both', async () => {
    const api = await start();
    const events: CatalogEvent[] = [];
    api.server.catalog.subscribe((e) => events.push(e));
    const reg = await api.call('PUT', '/v1/agent/service/register', web);
    expect(reg).toMatchObject({ status: 200, text: '' });

    expect((await api.call('GET', '/v1/catalog/services')).json).toEqual({
      web: ['v1'],
      'web-sidecar-proxy': ['v1'],
    });
    const [svc] = (await api.call('GET', '/v1/catalog/service/web')).json;
    expect(svc).toMatchObject({
      Node: 'isthmus-dc1',
      Datacenter: 'dc1',
      ServiceID: 'web',
      ServiceName: 'web',
      ServiceKind: '',
      ServiceAddress: '10.0.0.5',
      ServicePort: 8080,
      ServiceTags: ['v1'],
      ServiceMeta: { version: '1' },
      Namespace: 'default',
      Partition: 'default',
    });
    expect(svc.ID).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(svc.CreateIndex).toBeGreaterThan(0);

    const [side] = (await api.call('GET', '/v1/catalog/service/web-sidecar-proxy')).json;
    expect(side).toMatchObject({
      ServiceID: 'web-sidecar-proxy',
      ServiceName: 'web-sidecar-proxy',
      ServiceKind: 'connect-proxy',
      ServiceAddress: '10.0.0.5',
      ServicePort: 21000,
      ServiceProxy: {
        DestinationServiceName: 'web',
        DestinationServiceID: 'web',
        LocalServiceAddress: '127.0.0.1',
        LocalServicePort: 8080,
        Upstreams: [
          {
            DestinationType: 'service',
            DestinationName: 'db',
            DestinationNamespace: 'default',
            LocalBindAddress: '127.0.0.1',
            LocalBindPort: 9191,
            MeshGateway: {},
          },
          {
            DestinationName: 'api',
            DestinationPeer: 'east',
            LocalBindPort: 9192,
            MeshGateway: { Mode: 'local' },
          },
        ],
      },
    });

    const health = (await api.call('GET', '/v1/health/service/web')).json;
    expect(health).toHaveLength(1);
    expect(health[0].Node).toMatchObject({ Node: 'isthmus-dc1', Datacenter: 'dc1' });
    expect(health[0].Service).toMatchObject({
      ID: 'web',
      Service: 'web',
      Port: 8080,
      Address: '10.0.0.5',
      Tags: ['v1'],
    });
    expect(health[0].Service.Kind).toBeUndefined();
    expect(health[0].Checks).toEqual([
      expect.objectContaining({
        CheckID: 'service:web',
        Status: 'critical',
        ServiceID: 'web',
        Type: 'ttl',
      }),
    ]);
    const sideHealth = (await api.call('GET', '/v1/health/service/web-sidecar-proxy')).json;
    expect(sideHealth[0].Service).toMatchObject({
      Kind: 'connect-proxy',
      ID: 'web-sidecar-proxy',
      Proxy: { DestinationServiceName: 'web' },
    });
    // Consul's default sidecar check aliases the service, so a sidecar is unhealthy with its
    // service.
    expect(sideHealth[0].Checks).toEqual([
      expect.objectContaining({
        CheckID: 'service:web-sidecar-proxy:2',
        Type: 'alias',
        Status: 'critical',
      }),
    ]);
    expect(
      (await api.call('GET', '/v1/health/connect/web')).json.map((e: any) => e.Service.ID),
    ).toEqual(['web-sidecar-proxy']);
    expect(api.server.catalog.sidecarsOf('web').map((i) => i.id)).toEqual(['web-sidecar-proxy']);
    expect(events.map((e) => e.kind)).toEqual(['instance-upserted', 'instance-upserted']);

    expect((await api.call('PUT', '/v1/agent/service/deregister/web')).status).toBe(200);
    expect((await api.call('GET', '/v1/catalog/services')).json).toEqual({});
    expect(api.server.catalog.allInstances()).toEqual([]);
    expect(events.slice(2).map((e) => e.kind)).toEqual(['instance-removed', 'instance-removed']);
    const again = await api.call('PUT', '/v1/agent/service/deregister/web');
    expect(again.status).toBe(404);
    expect(again.json.error).toMatch(/Unknown service ID "web"/);
  });

  it('accepts form-encoded and untyped bodies (curl --data), gives sidecars the next free port, and keeps it on re-registration', async () => {
    const api = await start();
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    expect(
      (await api.call('PUT', '/v1/agent/service/register', JSON.stringify(web), form)).status,
    ).toBe(200);
    const second = { ...web, Name: 'billing', Connect: { SidecarService: {} } };
    expect((await api.call('PUT', '/v1/agent/service/register', second)).status).toBe(200);
    expect(api.server.catalog.instance('billing-sidecar-proxy')?.port).toBe(21001);
    expect(
      (await api.call('PUT', '/v1/agent/service/register', { ...web, Tags: ['v2'] })).status,
    ).toBe(200);
    expect(api.server.catalog.instance('web-sidecar-proxy')?.port).toBe(21000);
    expect(api.server.catalog.instance('web-sidecar-proxy')?.tags).toEqual(['v2']);
    // Re-registering without the sidecar removes it (the service no longer declares one).
    const { Connect: _c, ...plain } = web;
    expect((await api.call('PUT', '/v1/agent/service/register', plain)).status).toBe(200);
    expect(api.server.catalog.instance('web-sidecar-proxy')).toBeUndefined();
  });

  it("a mesh gateway's bind settings (Proxy.Config) read back under Consul's key names, and the read-back registers the same gateway", async () => {
    const api = await start();
    const gateway = {
      ID: 'gw-1',
      Name: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Address: '10.0.1.10',
      Port: 8443,
      TaggedAddresses: {
        lan: { Address: '10.0.1.10', Port: 8443 },
        wan: { Address: '192.0.2.10', Port: 443 },
      },
      Proxy: {
        Config: {
          envoy_mesh_gateway_bind_tagged_addresses: true,
          envoy_mesh_gateway_bind_addresses: { extra: { Address: '10.0.1.10', Port: 9443 } },
        },
      },
    };
    expect((await api.call('PUT', '/v1/agent/service/register', gateway)).status).toBe(200);
    const [entry] = (await api.call('GET', '/v1/catalog/service/mesh-gateway')).json;
    const config = {
      envoy_gateway_bind_tagged_addresses: true,
      envoy_gateway_bind_addresses: { extra: { Address: '10.0.1.10', Port: 9443 } },
    };
    expect(entry.ServiceProxy.Config).toEqual(config);
    const before = api.server.catalog.instance('gw-1')?.gatewayConfig;
    expect(
      (
        await api.call('PUT', '/v1/agent/service/register', {
          ...gateway,
          Proxy: { Config: entry.ServiceProxy.Config },
        })
      ).status,
    ).toBe(200);
    expect(api.server.catalog.instance('gw-1')?.gatewayConfig).toEqual(before);
    const [health] = (await api.call('GET', '/v1/health/service/mesh-gateway')).json;
    expect(health.Service.Proxy.Config).toEqual(config);
  });

  it('TTL checks: pass/warn/fail change health, ?passing filters, the sidecar follows, an expired TTL turns critical', async () => {
    const api = await start();
    await api.call('PUT', '/v1/agent/service/register', { ...web, Check: { TTL: '1s' } });
    await api.call('PUT', '/v1/agent/service/register', {
      Name: 'web',
      ID: 'web-2',
      Address: '10.0.0.6',
      Port: 8080,
      Check: { TTL: '30s', Status: 'passing' },
    });
    const statuses = async (): Promise<Record<string, string>> =>
      Object.fromEntries(
        (await api.call('GET', '/v1/health/service/web')).json.map((e: any) => [
          e.Service.ID,
          e.Checks[0].Status,
        ]),
      );
    const passingIds = async (name: string): Promise<string[]> =>
      (await api.call('GET', `/v1/health/service/${name}?passing`)).json.map(
        (e: any) => e.Service.ID,
      );

    expect(await statuses()).toEqual({ web: 'critical', 'web-2': 'passing' });
    expect(await passingIds('web')).toEqual(['web-2']);
    expect((await api.call('PUT', '/v1/agent/check/pass/service:web?note=all%20good')).status).toBe(
      200,
    );
    const entry = (await api.call('GET', '/v1/health/service/web')).json[0];
    expect(entry.Checks[0]).toMatchObject({ Status: 'passing', Output: 'all good' });
    expect(await passingIds('web')).toEqual(['web', 'web-2']);
    expect(await passingIds('web-sidecar-proxy')).toEqual(['web-sidecar-proxy']);
    expect((await api.call('PUT', '/v1/agent/check/warn/service:web-2')).status).toBe(200);
    expect(await statuses()).toEqual({ web: 'passing', 'web-2': 'warning' });
    expect(await passingIds('web')).toEqual(['web']);
    expect((await api.call('PUT', '/v1/agent/check/fail/service:web-2?note=down')).status).toBe(
      200,
    );
    expect(await statuses()).toEqual({ web: 'passing', 'web-2': 'critical' });
    expect((await api.call('GET', '/v1/health/service/web?passing=false')).json).toHaveLength(2);

    // Not refreshed within its 1 s TTL: critical, and the sidecar with it.
    await waitFor(async () => (await statuses()).web === 'critical', {
      timeoutMs: 5_000,
      what: 'the TTL check of web to expire',
    });
    expect((await api.call('GET', '/v1/health/service/web')).json[0].Checks[0].Output).toBe(
      'TTL expired',
    );
    expect(await passingIds('web-sidecar-proxy')).toEqual([]);

    expect((await api.call('PUT', '/v1/agent/check/pass/service:nope')).status).toBe(404);
    const alias = await api.call('PUT', '/v1/agent/check/pass/service:web-sidecar-proxy:2');
    expect(alias.status).toBe(412);
    expect(alias.json.error).toMatch(/alias check/);
  });

  it('config entries: write, read, list and delete every kind', async () => {
    const api = await start();
    const entries = [
      {
        Kind: 'proxy-defaults',
        Name: 'global',
        Config: { protocol: 'http' },
        MeshGateway: { Mode: 'local' },
      },
      { Kind: 'service-defaults', Name: 'web', Protocol: 'grpc' },
      {
        Kind: 'mesh',
        Name: 'mesh',
        DefaultIntentionAction: 'deny',
        Peering: { PeerThroughMeshGateways: true },
      },
      {
        Kind: 'service-intentions',
        Name: 'db',
        Sources: [
          { Name: 'web', Action: 'allow' },
          { Name: 'web', Peer: 'east', Action: 'deny' },
          { Name: '*', Action: 'deny' },
        ],
      },
      {
        Kind: 'exported-services',
        Name: 'default',
        Services: [{ Name: 'db', Consumers: [{ Peer: 'east' }, { Peer: 'west' }] }],
      },
    ];
    for (const entry of entries) {
      const put = await api.call('PUT', '/v1/config', entry);
      expect(put, entry.Kind).toMatchObject({ status: 200, json: true });
      const read = await api.call('GET', `/v1/config/${entry.Kind}/${entry.Name}`);
      expect(read.status).toBe(200);
      expect(read.json).toMatchObject(entry);
      expect(read.json.ModifyIndex).toBeGreaterThan(0);
      // What `read` prints can be written back unchanged.
      expect((await api.call('PUT', '/v1/config', read.json)).status, entry.Kind).toBe(200);
      expect(
        (await api.call('GET', `/v1/config/${entry.Kind}`)).json.map((e: any) => e.Name),
      ).toEqual([entry.Name]);
    }
    expect(api.server.catalog.configEntry('mesh', 'mesh')).toEqual({
      kind: 'mesh',
      name: 'mesh',
      defaultIntentionAction: 'deny',
      peering: { peerThroughMeshGateways: true },
    });
    expect(api.server.catalog.configEntry('service-defaults', 'web')?.protocol).toBe('grpc');
    const sd = (await api.call('GET', '/v1/config/service-defaults/web')).json;
    await api.call('PUT', '/v1/config', {
      Kind: 'service-defaults',
      Name: 'web',
      Protocol: 'http',
    });
    const sd2 = (await api.call('GET', '/v1/config/service-defaults/web')).json;
    expect(sd2.CreateIndex).toBe(sd.CreateIndex);
    expect(sd2.ModifyIndex).toBeGreaterThan(sd.ModifyIndex);
    await api.call('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'api' });
    expect(
      (await api.call('GET', '/v1/config/service-defaults')).json.map((e: any) => [
        e.Name,
        e.Protocol,
      ]),
    ).toEqual([
      ['api', 'tcp'],
      ['web', 'http'],
    ]);

    for (const entry of entries) {
      expect((await api.call('DELETE', `/v1/config/${entry.Kind}/${entry.Name}`)).status).toBe(200);
      expect((await api.call('GET', `/v1/config/${entry.Kind}/${entry.Name}`)).status).toBe(404);
    }
    expect((await api.call('DELETE', '/v1/config/service-defaults/nope')).status).toBe(404);
    expect((await api.call('GET', '/v1/config/nope-kind')).json).toMatchObject({ field: 'Kind' });
  });

  it('sameness groups and subsets other entries name: 400 naming the entry that holds the name, nothing changed; all kept across a restart', async () => {
    const first = await start();
    const put = (entry: unknown) => first.call('PUT', '/v1/config', entry);
    const group = {
      Kind: 'sameness-group',
      Name: 'shop',
      DefaultForFailover: true,
      IncludeLocal: true,
      Members: [{ Partition: 'default' }],
    };
    const resolver = {
      Kind: 'service-resolver',
      Name: 'web',
      Failover: { '*': { SamenessGroup: 'shop' } },
    };
    const exports = {
      Kind: 'exported-services',
      Name: 'default',
      Services: [{ Name: 'web', Consumers: [{ SamenessGroup: 'shop' }] }],
    };
    expect((await put(resolver)).json).toMatchObject({ field: 'Failover.*.SamenessGroup' });
    expect((await put({ ...group, Members: [{ Peer: 'east' }] })).json).toMatchObject({
      field: 'Members[0].Peer',
      error: expect.stringContaining('"east" is not a peering of this cluster'),
    });
    for (const entry of [group, resolver, exports]) expect((await put(entry)).status).toBe(200);
    expect((await put({ ...group, Name: 'other' })).json).toMatchObject({
      field: 'DefaultForFailover',
    });
    const del = await first.call('DELETE', '/v1/config/sameness-group/shop');
    expect(del.status).toBe(400);
    expect(del.json.error).toContain(
      'still named by service-resolver "web" (Failover.*), exported-services "default"',
    );

    await put({
      Kind: 'service-resolver',
      Name: 'api',
      Subsets: { v2: { Filter: 'Service.Meta.version == 2' } },
    });
    await put({
      Kind: 'service-resolver',
      Name: 'db',
      Redirect: { Service: 'api', ServiceSubset: 'v2' },
    });
    const gone = await first.call('DELETE', '/v1/config/service-resolver/api');
    expect(gone.json).toMatchObject({
      field: 'Subsets.v2',
      error: expect.stringContaining('still named by service-resolver "db" (Redirect)'),
    });
    expect((await put({ Kind: 'service-resolver', Name: 'api' })).json).toMatchObject({
      field: 'Subsets.v2',
    });
    await first.stop();
    servers.splice(servers.indexOf(first), 1);

    const second = await start({ dataDir: first.dataDir });
    expect((await second.call('GET', '/v1/config/sameness-group/shop')).json).toMatchObject(group);
    expect((await second.call('GET', '/v1/config/exported-services/default')).json).toMatchObject(
      exports,
    );
    expect((await second.call('GET', '/v1/config/service-resolver/api')).json).toMatchObject({
      Subsets: { v2: { Filter: 'Service.Meta.version == 2' } },
    });
  });

  it("what a router needs (its service's protocol, the subsets it names): a delete is 400 naming the router, nothing changed", async () => {
    const api = await start();
    const put = async (entry: unknown) =>
      expect((await api.call('PUT', '/v1/config', entry)).status).toBe(200);
    await put({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    await put({
      Kind: 'service-resolver',
      Name: 'api',
      Subsets: { v1: { Filter: 'Service.Meta.version == v1' } },
    });
    await put({
      Kind: 'service-router',
      Name: 'api',
      Routes: [
        {
          Match: { HTTP: { PathPrefix: '/beta', CaseInsensitive: true } },
          Destination: { ServiceSubset: 'v1' },
        },
      ],
    });
    const protocol = await api.call('DELETE', '/v1/config/service-defaults/api');
    expect(protocol.status).toBe(400);
    expect(protocol.json).toMatchObject({
      field: 'Name',
      error: expect.stringContaining(
        `service-defaults "api" is still needed by service-router "api" (Name: api's protocol is "tcp"`,
      ),
    });
    const subsets = await api.call('DELETE', '/v1/config/service-resolver/api');
    expect(subsets.status).toBe(400);
    expect(subsets.json.error).toContain(
      'still needed by service-router "api" (Routes[0].Destination.ServiceSubset: "v1" is not a subset of api',
    );
    for (const kind of ['service-defaults', 'service-resolver'])
      expect((await api.call('GET', `/v1/config/${kind}/api`)).status).toBe(200);
    // Once the router is gone, so is the reason to refuse.
    for (const kind of ['service-router', 'service-resolver', 'service-defaults'])
      expect((await api.call('DELETE', `/v1/config/${kind}/api`)).status).toBe(200);
  });

  it('?dc= naming this datacenter answers here; another one, without WAN federation, is a 400 naming dc', async () => {
    const api = await start({ flags: { datacenter: 'east' } });
    expect((await api.call('PUT', '/v1/agent/service/register', web)).status).toBe(200);
    const own = await api.call('GET', '/v1/health/service/web?dc=east');
    expect(own.status).toBe(200);
    expect(own.json).toHaveLength(1);
    const other = await api.call('GET', '/v1/catalog/services?dc=west');
    expect(other.status).toBe(400);
    expect(other.json).toMatchObject({ field: 'dc' });
    expect(other.json.error).toContain('not in a WAN federation');
    const write = await api.call('PUT', '/v1/config?dc=west', {
      Kind: 'service-defaults',
      Name: 'web',
      Protocol: 'http',
    });
    expect(write.status).toBe(400);
    expect((await api.call('GET', '/v1/config/service-defaults')).json).toEqual([]);
  });

  it('keeps the catalog, config entries and TTL deadlines across a restart', async () => {
    const first = await start();
    await first.call('PUT', '/v1/agent/service/register', {
      ...web,
      Check: { TTL: '2s', Status: 'passing' },
    });
    await first.call('PUT', '/v1/config', {
      Kind: 'service-defaults',
      Name: 'web',
      Protocol: 'http',
    });
    const before = (await first.call('GET', '/v1/catalog/service/web-sidecar-proxy')).text;
    await first.stop();
    servers.splice(servers.indexOf(first), 1);

    const second = await start({ dataDir: first.dataDir });
    expect((await second.call('GET', '/v1/catalog/service/web-sidecar-proxy')).text).toBe(before);
    expect((await second.call('GET', '/v1/config/service-defaults/web')).json).toMatchObject({
      Protocol: 'http',
    });
    expect(second.server.catalog.configEntry('service-defaults', 'web')?.protocol).toBe('http');
    // The persisted deadline still runs after the restart.
    await waitFor(
      async () =>
        (await second.call('GET', '/v1/health/service/web')).json[0].Checks[0].Status ===
        'critical',
      {
        timeoutMs: 6_000,
        what: 'the TTL to expire after a restart',
      },
    );
    const next = await second.call('PUT', '/v1/agent/service/register', { Name: 'other', Port: 1 });
    expect(next.status).toBe(200);
    expect(second.server.catalog.instance('other')!.createIndex).toBeGreaterThan(
      second.server.catalog.instance('web')!.modifyIndex,
    );
  });
});
