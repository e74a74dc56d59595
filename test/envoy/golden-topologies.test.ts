/**
 * Every topology the golden files cover (test/golden/mesh/*, test/golden/peered/*), brought up with
 * real `isthmus server` processes and a real Envoy for every proxy in it: each Envoy must reach
 * LIVE with no rejected update and nothing warming, `isthmus proxy-status` must show it SYNCED for
 * every type, and its config dump must hold the resource names the golden files list for it
 * (trust domains masked; listener names carry addresses, so each loopback address is mapped back
 * to the golden's). A proxy without a golden file must hold what the server says it should.
 *
 * The registrations, config entries and peerings are the golden tests', with every address an
 * Envoy binds moved to 127.0.0.1 and a free port, and every address it would only dial moved to
 * loopback as well (the hostname gateway is `localhost`). No test here sends traffic through the
 * proxies, except the peering stream that passes through the gateways in the last topology.
 *
 * Servers are shared where the golden names allow it: one dc1 holds the sidecar and remote-dc
 * cases, another the bind-tagged gateway (its gateway sees only `api`), one peered trio (A, B, C)
 * every peered case but peering through gateways, which needs a pair of its own (the `mesh`
 * entry adds peering chains to every gateway).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BootstrapProxyKind } from '../../src/mesh/bootstrap.js';
import { peeringServerName } from '../../src/mesh/names.js';
import { goldenRoot } from '../helpers/golden.js';
import { exportEntry, startPeeredMeshes } from '../helpers/peered-mesh.js';
import {
  resolverFailoverConfig,
  routerSplitterConfig,
  trustDomainMasker,
  webIntentionsConfig,
  apiL7IntentionsConfig,
} from '../helpers/proxy-golden.js';
import { cleanupProcesses, runCli } from '../helpers/process.js';
import { startMeshProcess } from '../helpers/mesh-server.js';
import { waitFor } from '../helpers/wait.js';
import { listenPort } from './apps.js';
import {
  cleanupEnvoys,
  type ConfigDump,
  dumpNames,
  dumpSection,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
  startEnvoy,
  waitHealthy,
} from './harness.js';
import {
  bootstrapFor,
  eventually,
  type MeshProcess,
  startCluster,
  waitSynced,
  withSidecar,
} from './mesh.js';

/** Resource names per xDS type, sorted. */
interface Names {
  readonly clusters: string[];
  readonly listeners: string[];
  readonly secrets: string[];
  readonly routes: string[];
  readonly endpoints: string[];
}

interface Proxy {
  readonly node: MeshProcess;
  readonly id: string;
  readonly kind: BootstrapProxyKind;
  readonly datacenter: string;
  /** A name as Envoy holds it → as the golden file spells it. */
  readonly relabel: (name: string) => string;
  envoy?: EnvoyProcess;
}

/**
 * Every golden case; `every golden case is covered` fails when a new one is not brought up here.
 */
const goldenCases = [
  'mesh/sidecar-tcp-http-intentions',
  'mesh/sidecar-l7-intentions',
  'mesh/mesh-gateway-remote-dc',
  'mesh/mesh-gateway-bind-tagged-addresses',
  'peered/sidecar-peered-upstreams',
  'peered/mesh-gateway-importing',
  'peered/mesh-gateway-exporting-two-peers',
  'peered/sidecar-exported-to-two-peers',
  'peered/mesh-gateway-peering-acceptor',
  'peered/mesh-gateway-peering-dialer',
  'peered/sidecar-resolver-failover-subsets',
  'peered/sidecar-router-splitter',
] as const;

/** The proxies of those topologies that have no golden file of their own. */
const otherProxies = [
  'dc1/db-sidecar-proxy',
  'dc1-bind/api-sidecar-proxy',
  'dc-a/db-sidecar-proxy',
  'dc-a/gw-2',
  'resolver-b/api-1-sidecar-proxy',
] as const;

const proxies = new Map<string, Proxy>();
const nodes: MeshProcess[] = [];

/** Free loopback ports; listenPort never hands out one twice in a test process. */
const port = listenPort;

const loopback = (p: number) => `127.0.0.1:${p}`;

/**
 * Masks trust domains, then maps each listener's loopback `address:port` suffix to the golden's.
 */
function relabeler(
  tds: Readonly<Record<string, string>>,
  addresses: Readonly<Record<string, string>> = {},
): (name: string) => string {
  const mask = trustDomainMasker(tds);
  return (name) => {
    const masked = mask(name);
    for (const [actual, golden] of Object.entries(addresses))
      if (masked.endsWith(`:${actual}`)) return masked.slice(0, -actual.length) + golden;
    return masked;
  };
}

function addProxy(
  key: string,
  node: MeshProcess,
  datacenter: string,
  id: string,
  kind: BootstrapProxyKind,
  relabel: (name: string) => string = (n) => n,
): void {
  proxies.set(key, { node, id, kind, datacenter, relabel });
}

/** A mesh gateway as the golden tests register it: a LAN and a WAN address (here on loopback). */
function gateway(
  id: string,
  lan: { host: string; port: number },
  wan: { host: string; port: number },
  extra: Record<string, unknown> = {},
) {
  return {
    ID: id,
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Address: lan.host,
    Port: lan.port,
    TaggedAddresses: {
      lan: { Address: lan.host, Port: lan.port },
      wan: { Address: wan.host, Port: wan.port },
    },
    ...extra,
  };
}

const lo = (p: number) => ({ host: '127.0.0.1', port: p });

/**
 * mesh/sidecar-tcp-http-intentions, mesh/sidecar-l7-intentions and mesh/mesh-gateway-remote-dc in
 * one dc1: web (HTTP) calls api (HTTP) and db (TCP), intentions on web, L7 intentions on api; a gateway with api, db and web local and dc2 remote.
 * dc2's gateway is a catalog entry only: its Envoy would belong to dc2's servers.
 */
async function meshTopology(): Promise<void> {
  const dc = await startCluster('dc1');
  nodes.push(dc);
  const tds = { 'trust-domain': await dc.trustDomain() };
  for (const entry of webIntentionsConfig) await dc.putConfig(entry);
  await dc.putConfig(apiL7IntentionsConfig);
  const apiSidecar = await port();
  await dc.register(withSidecar('api', await port(), apiSidecar));
  await dc.register(withSidecar('db', await port(), await port()));
  const [webSidecar, apiBind, dbBind, gw] = [
    await port(),
    await port(),
    await port(),
    await port(),
  ];
  await dc.register(
    withSidecar('web', await port(), webSidecar, [
      { DestinationName: 'api', LocalBindPort: apiBind },
      { DestinationName: 'db', LocalBindPort: dbBind },
    ]),
  );
  await dc.register(gateway('mesh-gateway', lo(gw), lo(gw)));
  const dc2 = await port();
  await dc.register({
    ...gateway('mesh-gateway-dc2', lo(dc2), lo(dc2)),
    Datacenter: 'dc2',
    TaggedAddresses: { wan: { Address: '127.0.0.1', Port: dc2 } },
  });
  const webAddresses = {
    [loopback(webSidecar)]: '127.0.0.1:21002',
    [loopback(apiBind)]: '127.0.0.1:19090',
    [loopback(dbBind)]: '127.0.0.1:15432',
  };
  addProxy(
    'mesh/sidecar-tcp-http-intentions',
    dc,
    'dc1',
    'web-sidecar-proxy',
    'connect-proxy',
    relabeler(tds, webAddresses),
  );
  addProxy(
    'mesh/mesh-gateway-remote-dc',
    dc,
    'dc1',
    'mesh-gateway',
    'mesh-gateway',
    relabeler(tds, { [loopback(gw)]: '127.0.0.1:8443' }),
  );
  addProxy(
    'mesh/sidecar-l7-intentions',
    dc,
    'dc1',
    'api-sidecar-proxy',
    'connect-proxy',
    relabeler(tds, { [loopback(apiSidecar)]: '127.0.0.1:21000' }),
  );
  addProxy('dc1/db-sidecar-proxy', dc, 'dc1', 'db-sidecar-proxy', 'connect-proxy');
}

/** mesh/mesh-gateway-bind-tagged-addresses: a gateway listening on its LAN and its WAN address. */
async function bindTaggedTopology(): Promise<void> {
  const dc = await startCluster('dc1');
  nodes.push(dc);
  const tds = { 'trust-domain': await dc.trustDomain() };
  await dc.register(withSidecar('api', await port(), await port()));
  const [lan, wan, dc2] = [await port(), await port(), await port()];
  await dc.register(
    gateway('mesh-gateway', lo(lan), lo(wan), {
      Proxy: { Config: { envoy_mesh_gateway_bind_tagged_addresses: true } },
    }),
  );
  await dc.register({
    ...gateway('mesh-gateway-dc2', lo(dc2), lo(dc2)),
    Datacenter: 'dc2',
    TaggedAddresses: { wan: { Address: '127.0.0.1', Port: dc2 } },
  });
  addProxy(
    'mesh/mesh-gateway-bind-tagged-addresses',
    dc,
    'dc1',
    'mesh-gateway',
    'mesh-gateway',
    relabeler(tds, { [loopback(lan)]: '127.0.0.1:8443', [loopback(wan)]: '192.0.2.10:443' }),
  );
  addProxy('dc1-bind/api-sidecar-proxy', dc, 'dc1', 'api-sidecar-proxy', 'connect-proxy');
}

/**
 * The peered cases but peering through gateways, in one trio: A exports api (HTTP) to B and C and
 * db (TCP) to B through gw-1 and gw-2 (WAN address a hostname); B's web calls both, api through
 * A's gateways (remote mode), db through B's own gw-b (local mode).
 */
async function peeredTopology(): Promise<void> {
  const { a, b } = await startPeeredMeshes({}, {}, startMeshProcess);
  const c = await startCluster('dc-c');
  nodes.push(a, b, c);
  const token = await a.api<{ PeeringToken: string }>('POST', '/v1/peering/token', {
    PeerName: 'cluster-c',
  });
  expect(
    (
      await c.api('POST', '/v1/peering/establish', {
        PeerName: 'cluster-a',
        PeeringToken: token.body.PeeringToken,
      })
    ).status,
  ).toBe(200);
  await waitFor(
    async () =>
      (await a.api<{ State: string }>('GET', '/v1/peering/cluster-c')).body?.State === 'ACTIVE',
    { timeoutMs: 30_000, intervalMs: 50, what: 'A–C ACTIVE' },
  );
  const tds = {
    'trust-domain-a': await a.trustDomain(),
    'trust-domain-b': await b.trustDomain(),
    'trust-domain-c': await c.trustDomain(),
  };
  const [apiSidecar, gw1, gw2, gwB, webSidecar, apiBind, dbBind] = [
    await port(),
    await port(),
    await port(),
    await port(),
    await port(),
    await port(),
    await port(),
  ];
  await a.register(withSidecar('api', await port(), apiSidecar));
  await a.register(withSidecar('db', await port(), await port()));
  await a.register(gateway('gw-1', lo(gw1), lo(gw1)));
  await a.register(gateway('gw-2', lo(gw2), { host: 'localhost', port: gw2 }));
  await a.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
  await a.putConfig(exportEntry({ api: ['cluster-b', 'cluster-c'], db: ['cluster-b'] }));
  await b.register(gateway('gw-b', lo(gwB), lo(gwB)));
  await b.putConfig({
    Kind: 'service-intentions',
    Name: 'web',
    Sources: [{ Name: 'frontend', Peer: 'cluster-a', Action: 'deny' }],
  });
  await b.register(
    withSidecar('web', await port(), webSidecar, [
      { DestinationName: 'api', DestinationPeer: 'cluster-a', LocalBindPort: apiBind },
      {
        DestinationName: 'db',
        DestinationPeer: 'cluster-a',
        LocalBindPort: dbBind,
        MeshGateway: { Mode: 'local' },
      },
    ]),
  );
  const webAddresses = {
    [loopback(webSidecar)]: '127.0.0.1:21000',
    [loopback(apiBind)]: '127.0.0.1:19090',
    [loopback(dbBind)]: '127.0.0.1:15432',
  };
  addProxy(
    'peered/sidecar-peered-upstreams',
    b,
    'dc-b',
    'web-sidecar-proxy',
    'connect-proxy',
    relabeler(tds, webAddresses),
  );
  addProxy(
    'peered/mesh-gateway-importing',
    b,
    'dc-b',
    'gw-b',
    'mesh-gateway',
    relabeler(tds, { [loopback(gwB)]: '10.1.0.2:8443' }),
  );
  addProxy(
    'peered/mesh-gateway-exporting-two-peers',
    a,
    'dc-a',
    'gw-1',
    'mesh-gateway',
    relabeler(tds, { [loopback(gw1)]: '10.0.0.2:8443' }),
  );
  addProxy(
    'peered/sidecar-exported-to-two-peers',
    a,
    'dc-a',
    'api-sidecar-proxy',
    'connect-proxy',
    relabeler(tds, { [loopback(apiSidecar)]: '127.0.0.1:21000' }),
  );
  addProxy('dc-a/db-sidecar-proxy', a, 'dc-a', 'db-sidecar-proxy', 'connect-proxy');
  addProxy('dc-a/gw-2', a, 'dc-a', 'gw-2', 'mesh-gateway');
}

/**
 * peered/sidecar-resolver-failover-subsets, in a pair of its own (B's web differs from the trio's):
 * B's resolver for api fails over from subset v1 to subset v2 and to A's api, and B's resolver for
 * db redirects to A's db. B's api instances run on loopback with metadata and tags as in the golden
 * test; one of their sidecars gets an Envoy too.
 */
async function resolverTopology(): Promise<void> {
  const { a, b } = await startPeeredMeshes({}, {}, startMeshProcess);
  nodes.push(a, b);
  const tds = { 'trust-domain-a': await a.trustDomain(), 'trust-domain-b': await b.trustDomain() };
  await a.register(withSidecar('api', await port(), await port()));
  await a.register(withSidecar('db', await port(), await port()));
  await a.register(gateway('gw-1', lo(await port()), lo(await port())));
  await a.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
  await a.putConfig(exportEntry({ api: ['cluster-b'], db: ['cluster-b'] }));
  await b.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
  for (const [id, version] of [
    ['api-1', 'v1'],
    ['api-2', 'v2'],
    ['api-3', 'v2'],
  ] as const)
    await b.register({
      ...withSidecar('api', await port(), await port()),
      ID: id,
      Meta: { version },
      Tags: version === 'v2' ? ['canary'] : [],
    });
  for (const entry of resolverFailoverConfig) await b.putConfig(entry);
  const [webSidecar, apiBind, dbBind] = [await port(), await port(), await port()];
  await b.register(
    withSidecar('web', await port(), webSidecar, [
      { DestinationName: 'api', LocalBindPort: apiBind },
      { DestinationName: 'db', LocalBindPort: dbBind },
    ]),
  );
  addProxy(
    'peered/sidecar-resolver-failover-subsets',
    b,
    'dc-b',
    'web-sidecar-proxy',
    'connect-proxy',
    relabeler(tds, {
      [loopback(webSidecar)]: '127.0.0.1:21000',
      [loopback(apiBind)]: '127.0.0.1:19090',
      [loopback(dbBind)]: '127.0.0.1:15432',
    }),
  );
  addProxy('resolver-b/api-1-sidecar-proxy', b, 'dc-b', 'api-1-sidecar-proxy', 'connect-proxy');
  // peered/sidecar-router-splitter shares the pair: its services are B's shop and A's api.
  for (const [id, name, version] of [
    ['shop-1', 'shop', 'v1'],
    ['shop-2', 'shop', 'v2'],
    ['shop-next-1', 'shop-next', ''],
  ] as const)
    await b.register({
      ...withSidecar(name, await port(), await port()),
      ID: id,
      Meta: version ? { version } : {},
    });
  for (const entry of routerSplitterConfig) await b.putConfig(entry);
  const [frontSidecar, shopBind] = [await port(), await port()];
  await b.register(
    withSidecar('front', await port(), frontSidecar, [
      { DestinationName: 'shop', LocalBindPort: shopBind },
    ]),
  );
  addProxy(
    'peered/sidecar-router-splitter',
    b,
    'dc-b',
    'front-sidecar-proxy',
    'connect-proxy',
    relabeler(tds, {
      [loopback(frontSidecar)]: '127.0.0.1:21000',
      [loopback(shopBind)]: '127.0.0.1:19191',
    }),
  );
}

/**
 * Peering through mesh gateways: A's token names gw-a's WAN address (its own listener here, not A's
 * peering port as in the golden test, which has no Envoy to pass it through), and B dials through
 * gw-b first. The gateways' Envoys are LIVE before B establishes, so the stream crosses them.
 */
let throughGateways: { tdA: string; tokenAddresses: string[]; gwA: number } | undefined;
async function peeringThroughGatewaysTopology(): Promise<void> {
  const [a, b] = await Promise.all([startCluster('dc-a'), startCluster('dc-b')]);
  nodes.push(a, b);
  const meshEntry = { Kind: 'mesh', Name: 'mesh', Peering: { PeerThroughMeshGateways: true } };
  await a.putConfig(meshEntry);
  await b.putConfig(meshEntry);
  const [gwA, gwB] = [await port(), await port()];
  await a.register(gateway('gw-a', lo(gwA), lo(gwA)));
  await b.register(gateway('gw-b', lo(gwB), lo(gwB)));
  const tds = { 'trust-domain-a': await a.trustDomain(), 'trust-domain-b': await b.trustDomain() };
  addProxy(
    'peered/mesh-gateway-peering-acceptor',
    a,
    'dc-a',
    'gw-a',
    'mesh-gateway',
    relabeler(tds, { [loopback(gwA)]: '127.0.0.1:8443' }),
  );
  addProxy(
    'peered/mesh-gateway-peering-dialer',
    b,
    'dc-b',
    'gw-b',
    'mesh-gateway',
    relabeler(tds, { [loopback(gwB)]: '127.0.0.1:1' }),
  );
  await Promise.all(
    ['peered/mesh-gateway-peering-acceptor', 'peered/mesh-gateway-peering-dialer'].map(
      async (key) => waitHealthy(await startProxyEnvoy(proxies.get(key)!)),
    ),
  );
  const token = await a.api<{ PeeringToken: string }>('POST', '/v1/peering/token', {
    PeerName: 'cluster-b',
  });
  const tokenAddresses = (
    JSON.parse(Buffer.from(token.body.PeeringToken, 'base64').toString()) as {
      ServerAddresses: string[];
    }
  ).ServerAddresses;
  expect(
    (
      await b.api('POST', '/v1/peering/establish', {
        PeerName: 'cluster-a',
        PeeringToken: token.body.PeeringToken,
      })
    ).status,
  ).toBe(200);
  for (const [node, peer] of [
    [a, 'cluster-b'],
    [b, 'cluster-a'],
  ] as const) {
    await waitFor(
      async () =>
        (await node.api<{ State: string }>('GET', `/v1/peering/${peer}`)).body?.State === 'ACTIVE',
      { timeoutMs: 60_000, intervalMs: 50, what: `${peer} ACTIVE through the gateways` },
    );
  }
  throughGateways = { tdA: tds['trust-domain-a'], tokenAddresses, gwA };
}

async function startProxyEnvoy(p: Proxy): Promise<EnvoyProcess> {
  p.envoy ??= await startEnvoy(
    `${p.datacenter}/${p.id}`,
    await bootstrapFor(p.node, p.id, p.kind, p.datacenter),
  );
  return p.envoy;
}

/**
 * Names of what Envoy holds: active clusters, listeners, secrets, RDS route configs and EDS load
 * assignments.
 */
function namesOf(dump: ConfigDump, relabel: (name: string) => string): Names {
  const { clusters, listeners, secrets } = dumpNames(dump);
  const routes = (
    (dumpSection(dump, 'RoutesConfigDump')?.dynamic_route_configs ?? []) as {
      route_config: { name: string };
    }[]
  ).map((r) => r.route_config.name);
  // The dump lists the load assignment of every CDS cluster; the EDS ones are what xDS sent.
  const eds = new Set(
    (
      (dumpSection(dump, 'ClustersConfigDump')?.dynamic_active_clusters ?? []) as {
        cluster: { name: string; type?: string };
      }[]
    )
      .filter((c) => c.cluster.type === 'EDS')
      .map((c) => c.cluster.name),
  );
  const endpoints = (
    (dumpSection(dump, 'EndpointsConfigDump')?.dynamic_endpoint_configs ?? []) as {
      endpoint_config: { cluster_name: string };
    }[]
  )
    .map((e) => e.endpoint_config.cluster_name)
    .filter((name) => eds.has(name));
  const sorted = (names: string[]) => names.map(relabel).sort();
  return {
    clusters: sorted(clusters),
    listeners: sorted(listeners),
    secrets: sorted(secrets),
    routes: sorted(routes),
    endpoints: sorted(endpoints),
  };
}

/**
 * The names in test/golden/<dir>/<type>.json (a type without a file: none). Peering ports are
 * masked there as a whole `"portValue": N` field, which leaves the text no JSON until put back.
 */
function goldenNames(dir: string): Names {
  const read = (type: string, key: 'name' | 'clusterName'): string[] => {
    const file = join(goldenRoot, dir, `${type}.json`);
    if (!existsSync(file)) return [];
    const text = readFileSync(file, 'utf8').replace(/<peering-port-[a-z]+>/g, '"portValue": 0');
    return (JSON.parse(text) as Record<string, string>[]).map((r) => r[key]!).sort();
  };
  return {
    clusters: read('cds', 'name'),
    listeners: read('lds', 'name'),
    secrets: read('sds', 'name'),
    routes: read('rds', 'name'),
    endpoints: read('eds', 'clusterName'),
  };
}

/**
 * What the server wants the proxy to hold, per type (`isthmus proxy-config <id> <type>`), but for
 * NOT_REQUESTED resources: Envoy asks for a secret only once something it holds names it, and a
 * sidecar exported to peers (api and db in dc-a) gets `roots:local` that nothing names (its
 * public listener trusts the local and peer roots inline, through the SPIFFE validator).
 */
async function serverNames(p: Proxy): Promise<Names> {
  const of = async (type: string) => {
    const res = await p.node.api<{ Resources: { Name: string; Status: string }[] }>(
      'GET',
      `/v1/xds/proxies/${encodeURIComponent(p.id)}/config/${type}`,
    );
    if (res.status !== 200) throw new Error(`proxy-config ${p.id} ${type}: HTTP ${res.status}`);
    return res.body.Resources.filter((r) => r.Status !== 'NOT_REQUESTED')
      .map((r) => r.Name)
      .sort();
  };
  return {
    clusters: await of('clusters'),
    listeners: await of('listeners'),
    secrets: await of('secrets'),
    routes: await of('routes'),
    endpoints: await of('endpoints'),
  };
}

/**
 * Envoy holds `expected` (eventually: peered config arrives as peering replicates), is LIVE with
 * nothing rejected or warming, never timed out waiting for a resource, and is SYNCED.
 */
async function expectEnvoyHolds(
  key: string,
  expected: (p: Proxy) => Promise<Names> | Names,
): Promise<void> {
  const p = proxies.get(key);
  if (!p?.envoy) throw new Error(`${key}: no Envoy was started for it`);
  const envoy = p.envoy;
  await eventually(
    async () => {
      const [holds, wanted] = [namesOf(await envoy.configDump(), p.relabel), await expected(p)];
      if (JSON.stringify(holds) !== JSON.stringify(wanted))
        throw new Error(`Envoy holds ${JSON.stringify(holds)}, expected ${JSON.stringify(wanted)}`);
    },
    `${key}: Envoy holding the expected resource names`,
    60_000,
  );
  await waitHealthy(envoy);
  // Envoy gave up waiting for none of its subscriptions (it does after 15 s: the config it then
  // runs with is incomplete, as with a cluster whose endpoints waited for a CDS ACK Envoy
  // withholds).
  const fetches = await envoy.stats('init_fetch_timeout');
  expect(Object.keys(fetches).length, `${key}: init_fetch_timeout stats`).toBeGreaterThan(0);
  expect(
    Object.entries(fetches).filter(([, n]) => n > 0),
    `${key}: xDS fetches Envoy gave up waiting for`,
  ).toEqual([]);
  const states = await waitSynced(p.node, p.id);
  expect(
    Object.values(states).filter((s) => s === 'SYNCED').length,
    `${key}: SYNCED types`,
  ).toBeGreaterThan(0);
}

describe.skipIf(skipWithoutEnvoy())('golden topologies with real Envoys', () => {
  showEnvoyLogsOnFailure();

  beforeAll(async () => {
    await Promise.all([
      meshTopology(),
      bindTaggedTopology(),
      peeredTopology(),
      peeringThroughGatewaysTopology(),
      resolverTopology(),
    ]);
    await Promise.all([...proxies.values()].map(startProxyEnvoy));
  }, 180_000);

  afterAll(async () => {
    await cleanupEnvoys();
    await Promise.all(nodes.map((n) => n.close()));
    await cleanupProcesses();
  });

  it('every golden case is covered', () => {
    const cases = ['mesh', 'peered'].flatMap((dir) =>
      readdirSync(join(goldenRoot, dir), { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => `${dir}/${e.name}`),
    );
    expect(cases.sort()).toEqual([...goldenCases].sort());
  });

  it.each(goldenCases)(
    '%s: LIVE, nothing rejected or warming, SYNCED, holding the golden names',
    async (key) => {
      await expectEnvoyHolds(key, () => goldenNames(key));
    },
  );

  it.each(otherProxies)(
    '%s (no golden file): LIVE, nothing rejected or warming, SYNCED, holding what the server wants',
    async (key) => {
      await expectEnvoyHolds(key, serverNames);
    },
  );

  it('peering through mesh gateways: the token names gw-a, and the peering stream crosses its Envoy to A', async () => {
    const t = throughGateways!;
    expect(t.tokenAddresses).toEqual([loopback(t.gwA)]);
    const cluster = peeringServerName(t.tdA, 'dc-a');
    const envoy = proxies.get('peered/mesh-gateway-peering-acceptor')!.envoy!;
    const stats = await envoy.stats(
      `^cluster\\.${cluster.replace(/\./g, '\\.')}\\.upstream_cx_total$`,
    );
    expect(stats[`cluster.${cluster}.upstream_cx_total`]).toBeGreaterThan(0);
  });

  it('isthmus proxy-status lists every proxy of every server SYNCED for each type it holds', async () => {
    for (const node of new Set([...proxies.values()].map((p) => p.node))) {
      const ids = [...proxies.values()].filter((p) => p.node === node).map((p) => p.id);
      const out = await runCli(['proxy-status', '--http-addr', node.httpAddress]);
      expect(out.code, out.stderr).toBe(0);
      const rows = out.stdout.split('\n').slice(1);
      for (const id of ids) {
        const row = rows.map((r) => r.trim()).find((r) => r.split(/\s+/)[0] === id);
        expect(row, `${id} in:\n${out.stdout}`).toMatch(
          /^\S+\s+(sidecar|mesh-gateway)\s+((SYNCED|-)\s+){5}\S+\s+-$/,
        );
      }
    }
  });
});
