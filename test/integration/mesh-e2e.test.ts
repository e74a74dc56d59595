/**
 * One cluster end to end: services registered over the HTTP API, a sidecar connecting with its
 * token over Delta ADS gets its complete config; then a new instance, a critical check and an
 * intention each produce the minimal push (issue 3, "What must be shown").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/xds/types.js';
import { startMeshServer, type MeshServer } from '../helpers/mesh-server.js';
import { serviceSpiffeId } from '../../src/mesh/names.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';

let mesh: MeshServer;
let web: EnvoyLike;
let td: string;
const sni = (svc: string) => `${svc}.default.dc1.internal.${td}`;

function withSidecar(name: string, port: number, id = name, upstreams: unknown[] = []) {
  return {
    ID: id,
    Name: name,
    Address: '127.0.0.1',
    Port: port,
    Check: { TTL: '30s', Status: 'passing' },
    Connect: { SidecarService: { Proxy: { Upstreams: upstreams } } },
  };
}

/** The responses the sidecar receives while `action` runs and pushes settle. */
async function pushesDuring(
  action: () => Promise<void>,
  until: (e: EnvoyLike) => boolean,
  what: string,
) {
  await web.settle();
  const mark = web.log.length;
  await action();
  await web.until(until, what);
  await web.settle();
  return web.log
    .slice(mark)
    .map((r) => ({ type: r.typeUrl.split('.').pop(), names: r.names, removed: r.removed }));
}

beforeAll(async () => {
  mesh = await startMeshServer();
  td = mesh.server.ca.trustDomain;
  await mesh.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
  await mesh.register(withSidecar('api', 9090));
  await mesh.register(withSidecar('db', 5432));
  await mesh.register(
    withSidecar('web', 8080, 'web', [
      { DestinationName: 'api', LocalBindPort: 19090 },
      { DestinationName: 'db', LocalBindPort: 15432 },
    ]),
  );
  web = await mesh.connect('web-sidecar-proxy');
});

afterAll(async () => {
  await mesh?.close();
});

describe('a sidecar in one cluster', () => {
  it('receives its complete config: clusters, endpoints, listeners, routes, secrets', async () => {
    await web.until(
      (e) =>
        e.names(TypeUrl.route).length === 1 &&
        e.names(TypeUrl.secret).length === 2 &&
        e.names(TypeUrl.endpoint).length === 2,
      'full config',
    );
    expect(web.names(TypeUrl.cluster)).toEqual([sni('api'), sni('db'), 'local_app']);
    expect(web.names(TypeUrl.endpoint)).toEqual([sni('api'), sni('db')]);
    expect(web.names(TypeUrl.listener)).toEqual([
      'api:127.0.0.1:19090',
      'db:127.0.0.1:15432',
      'public_listener:127.0.0.1:21002',
    ]);
    expect(web.names(TypeUrl.route)).toEqual(['api']);
    expect(web.names(TypeUrl.secret)).toEqual([
      `leaf:spiffe://${td}/ns/default/dc/dc1/svc/web`,
      'roots:local',
    ]);
    const leaf = JSON.stringify(
      web.get(TypeUrl.secret, `leaf:spiffe://${td}/ns/default/dc/dc1/svc/web`),
    );
    expect(leaf).toContain('BEGIN CERTIFICATE');
  });

  it('a new instance re-sends one EDS resource and nothing else', async () => {
    const pushes = await pushesDuring(
      () => mesh.register(withSidecar('db', 5433, 'db-2')),
      (e) => e.json(TypeUrl.endpoint, sni('db')).includes('21003'),
      'the second db sidecar in EDS',
    );
    expect(pushes).toEqual([{ type: 'ClusterLoadAssignment', names: [sni('db')], removed: [] }]);
  });

  it('a critical check re-sends one EDS resource without the instance', async () => {
    const pushes = await pushesDuring(
      async () => {
        const res = await mesh.api('PUT', '/v1/agent/check/fail/service:db-2?note=down');
        expect(res.status).toBe(200);
      },
      (e) => !e.json(TypeUrl.endpoint, sni('db')).includes('21003'),
      'the critical db-2 sidecar gone from EDS',
    );
    expect(pushes).toEqual([{ type: 'ClusterLoadAssignment', names: [sni('db')], removed: [] }]);
  });

  it('an intention deny re-sends only the public listener (its RBAC filter)', async () => {
    const pushes = await pushesDuring(
      () =>
        mesh.putConfig({
          Kind: 'service-intentions',
          Name: 'web',
          Sources: [{ Name: 'db', Action: 'deny' }],
        }),
      (e) => e.json(TypeUrl.listener, 'public_listener:127.0.0.1:21002').includes('svc/db$'),
      'the deny rule in the public listener',
    );
    expect(pushes).toEqual([
      { type: 'Listener', names: ['public_listener:127.0.0.1:21002'], removed: [] },
    ]);
  });
});

describe('minimal Consul registrations', () => {
  it('a service with neither address nor sidecar address gets a local sidecar (127.0.0.1)', async () => {
    await mesh.register({ Name: 'minimal', Port: 7070, Connect: { SidecarService: {} } });
    const res = await mesh.api<{ Service: { Address: string; Port: number } }[]>(
      'GET',
      '/v1/health/service/minimal-sidecar-proxy',
    );
    expect(res.status).toBe(200);
    expect(res.body[0]!.Service).toMatchObject({ Address: '127.0.0.1' });
  });

  it('a leaf identity counts as used while a proxy is built with it (the CA stops renewing it after)', async () => {
    const spiffeId = serviceSpiffeId(td, 'dc1', { name: 'ephemeral' });
    await mesh.register({
      ID: 'ephemeral-1',
      Name: 'ephemeral',
      Port: 7071,
      Connect: { SidecarService: {} },
    });
    await mesh.register({
      ID: 'ephemeral-2',
      Name: 'ephemeral',
      Port: 7072,
      Connect: { SidecarService: {} },
    });
    await mesh.server.snapshots.settled();
    expect(mesh.server.snapshots.usesIdentity(spiffeId)).toBe(true);
    expect((await mesh.api('PUT', '/v1/agent/service/deregister/ephemeral-1')).status).toBe(200);
    await mesh.server.snapshots.settled();
    expect(mesh.server.snapshots.usesIdentity(spiffeId), 'the other instance still uses it').toBe(
      true,
    );
    expect((await mesh.api('PUT', '/v1/agent/service/deregister/ephemeral-2')).status).toBe(200);
    await mesh.server.snapshots.settled();
    expect(mesh.server.snapshots.usesIdentity(spiffeId)).toBe(false);
  });
});
