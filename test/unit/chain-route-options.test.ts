/**
 * What a sidecar's route configuration carries from the discovery chain (issue 16): a resolver's
 * `LoadBalancer.HashPolicies` as the route's `hash_policy` (with and without a router, the policy
 * itself on the cluster), a router's `CaseInsensitive` path match as `case_sensitive: false`, and no
 * route configuration at all for a routed service whose protocol fell back to tcp. Built through
 * the real snapshot builder from Consul-shaped entries; every resource passes PGV validation.
 */
import { describe, expect, it } from 'vitest';
import type { CaRoots, Leaf } from '../../src/ca/types.js';
import { parseConfigEntry } from '../../src/catalog/config-entries.js';
import type { ConfigEntry, ServiceInstance, Upstream } from '../../src/catalog/types.js';
import type { BuildContext } from '../../src/snapshot/context.js';
import { buildSidecarSnapshot } from '../../src/snapshot/sidecar.js';
import { expandedJson } from '../../src/xds/envoy-json.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { resourcesFromSnapshot } from '../../src/xds/resources/index.js';
import { TypeUrl } from '../../src/xds/types.js';
import { FakeCatalog } from '../helpers/fake-catalog.js';
import { validateMessage } from '../helpers/pgv.js';

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
const leaf: Leaf = {
  spiffeId: `spiffe://${td}/ns/default/dc/dc1/svc/web`,
  certPem: '-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n',
  keyPem: '-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n',
  serial: '1',
  rootId: 'r1',
  notBefore: new Date(0),
  notAfter: new Date(0),
};

const upstream = (name: string, port: number): Upstream => ({
  destinationName: name,
  destinationNamespace: '',
  destinationPartition: '',
  destinationPeer: '',
  datacenter: '',
  localBindAddress: '127.0.0.1',
  localBindPort: port,
  meshGateway: { mode: '' },
});

function entry(json: Record<string, unknown>): ConfigEntry {
  const parsed = parseConfigEntry(json);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return parsed.value;
}

/** `web` calls `api` (three instances) and `admin`; the entries are Consul's JSON. */
function resourcesWith(entries: readonly Record<string, unknown>[]) {
  const catalog = new FakeCatalog('dc1');
  for (const [id, svc, port] of [
    ['api-1', 'api', 9001],
    ['api-2', 'api', 9002],
    ['api-3', 'api', 9003],
    ['admin-1', 'admin', 9100],
  ] as const)
    catalog.upsert({
      id: `${id}-sidecar-proxy`,
      name: `${svc}-sidecar-proxy`,
      kind: 'connect-proxy',
      address: '10.0.0.4',
      port: port + 10000,
      proxy: {
        destinationServiceName: svc,
        destinationServiceId: id,
        localServiceAddress: '127.0.0.1',
        localServicePort: port,
        meshGateway: { mode: '' },
        upstreams: [],
      },
    });
  const web = catalog.upsert({
    id: 'web-sidecar-proxy',
    name: 'web-sidecar-proxy',
    kind: 'connect-proxy',
    address: '10.0.0.3',
    port: 21000,
    proxy: {
      destinationServiceName: 'web',
      destinationServiceId: 'web',
      localServiceAddress: '127.0.0.1',
      localServicePort: 8080,
      meshGateway: { mode: '' },
      upstreams: [upstream('api', 19090), upstream('admin', 19100)],
    },
  });
  for (const e of entries) catalog.putEntry(entry(e));
  const ctx: BuildContext = {
    catalog,
    datacenter: 'dc1',
    trustDomain: td,
    roots,
    peerTrustDomain: () => undefined,
  };
  const { snapshot } = buildSidecarSnapshot(web as ServiceInstance, leaf, ctx);
  const cache = new XdsCache();
  return resourcesFromSnapshot(snapshot).map((s) => {
    const { bytes } = cache.encode(s.build());
    const typeName = s.typeUrl.slice(s.typeUrl.lastIndexOf('/') + 1);
    expect(validateMessage(typeName, bytes), s.name).toEqual([]);
    return { typeUrl: s.typeUrl, name: s.name, json: expandedJson(typeName, bytes) as Json };
  });
}

/** Proto JSON, walked by shape in the assertions. */
type Json = any;

const http = (name: string) => ({ Kind: 'service-defaults', Name: name, Protocol: 'http' });
const hashed = {
  Kind: 'service-resolver',
  Name: 'api',
  LoadBalancer: {
    Policy: 'ring_hash',
    RingHashConfig: { MinimumRingSize: 1024 },
    HashPolicies: [
      { Field: 'header', FieldValue: 'x-user', Terminal: true },
      { Field: 'cookie', FieldValue: 'sticky', CookieConfig: { TTL: '30m', Path: '/' } },
      { Field: 'cookie', FieldValue: 'jar', CookieConfig: { Session: true } },
      { Field: 'query_parameter', FieldValue: 'user' },
      { SourceIP: true },
    ],
  },
};
/** Consul's `injectLBToRouteAction` for the hash policies above. */
const envoyHashPolicy = [
  { header: { headerName: 'x-user' }, terminal: true },
  { cookie: { name: 'sticky', ttl: { seconds: 1800 }, path: '/' } },
  // A session cookie: a TTL present and zero (an absent TTL would mean "never set a cookie").
  { cookie: { name: 'jar', ttl: {} } },
  { queryParameter: { name: 'user' } },
  { connectionProperties: { sourceIp: true } },
];

const routeOf = (resources: ReturnType<typeof resourcesWith>, name: string) =>
  resources.find((r) => r.typeUrl === TypeUrl.route && r.name === name)?.json;
const clusterOf = (resources: ReturnType<typeof resourcesWith>, name: string) =>
  resources.find((r) => r.typeUrl === TypeUrl.cluster && r.name === name)?.json;
const apiCluster = `api.default.dc1.internal.${td}`;

describe("a resolver's hash policies", () => {
  it('go on the route to a ring_hash cluster, in order, as Consul writes them', () => {
    const resources = resourcesWith([http('api'), hashed]);
    const route = routeOf(resources, 'api');
    expect(route.virtualHosts[0].routes).toEqual([
      {
        match: { prefix: '/' },
        route: { cluster: apiCluster, hashPolicy: envoyHashPolicy },
      },
    ]);
    expect(clusterOf(resources, apiCluster)).toMatchObject({
      lbPolicy: 'RING_HASH',
      ringHashLbConfig: { minimumRingSize: 1024 },
    });
  });

  it('go on each router route whose resolver hashes, and on the catch-all', () => {
    const resources = resourcesWith([
      http('api'),
      http('admin'),
      hashed,
      {
        Kind: 'service-router',
        Name: 'api',
        Routes: [
          { Match: { HTTP: { PathPrefix: '/admin' } }, Destination: { Service: 'admin' } },
          { Match: { HTTP: { PathPrefix: '/v1' } }, Destination: { PrefixRewrite: '/' } },
        ],
      },
    ]);
    const routes = routeOf(resources, 'api').virtualHosts[0].routes;
    expect(routes.map((r: Json) => [r.match.prefix, r.route.hashPolicy?.length ?? 0])).toEqual([
      ['/admin', 0],
      ['/v1', 5],
      ['/', 5],
    ]);
  });

  it('a maglev resolver without hash policies gets no hash_policy (Envoy picks at random)', () => {
    const resources = resourcesWith([
      http('api'),
      { Kind: 'service-resolver', Name: 'api', LoadBalancer: { Policy: 'maglev' } },
    ]);
    expect(routeOf(resources, 'api').virtualHosts[0].routes[0].route.hashPolicy).toBeUndefined();
    expect(clusterOf(resources, apiCluster)).toMatchObject({ lbPolicy: 'MAGLEV' });
  });
});

describe("a router's CaseInsensitive path match", () => {
  it('is case_sensitive false on prefix and exact paths, and (?i) on a regex', () => {
    const resources = resourcesWith([
      http('api'),
      http('admin'),
      {
        Kind: 'service-router',
        Name: 'api',
        Routes: [
          {
            Match: { HTTP: { PathPrefix: '/Admin', CaseInsensitive: true } },
            Destination: { Service: 'admin' },
          },
          {
            Match: { HTTP: { PathExact: '/Health', CaseInsensitive: true } },
            Destination: { Service: 'admin' },
          },
          {
            Match: { HTTP: { PathRegex: '/v[0-9]+/Admin', CaseInsensitive: true } },
            Destination: { Service: 'admin' },
          },
          { Match: { HTTP: { PathPrefix: '/Strict' } }, Destination: { Service: 'admin' } },
        ],
      },
    ]);
    const matches = routeOf(resources, 'api')
      .virtualHosts[0].routes.slice(0, 4)
      .map((r: Json) => r.match);
    expect(matches).toEqual([
      { prefix: '/Admin', caseSensitive: false },
      { path: '/Health', caseSensitive: false },
      { safeRegex: { regex: '(?i)/v[0-9]+/Admin' }, caseSensitive: false },
      { prefix: '/Strict' },
    ]);
  });
});

describe('a routed service whose protocol fell back to tcp', () => {
  it('gets no route configuration: its listener is TCP, to the resolver node alone', () => {
    // The router was written while api was http; proxy-defaults then left api on tcp.
    const resources = resourcesWith([
      hashed,
      {
        Kind: 'service-router',
        Name: 'api',
        Routes: [{ Match: { HTTP: { PathPrefix: '/admin' } }, Destination: { Service: 'admin' } }],
      },
    ]);
    expect(routeOf(resources, 'api')).toBeUndefined();
    expect(resources.filter((r) => r.typeUrl === TypeUrl.route)).toEqual([]);
    expect(resources.filter((r) => r.typeUrl === TypeUrl.cluster).map((r) => r.name)).toEqual([
      `admin.default.dc1.internal.${td}`,
      apiCluster,
      'local_app',
    ]);
    const listener = resources.find((r) => r.name === 'api:127.0.0.1:19090')?.json;
    expect(JSON.stringify(listener)).toContain('envoy.filters.network.tcp_proxy');
  });
});
