/**
 * The ADS server against a real, independent xDS client: `@grpc/grpc-js-xds` (proxyless gRPC,
 * SotW ADS, by-name subscriptions LDS → RDS → CDS → EDS) routing real calls to two gRPC backends on
 * 127.0.0.1. Whatever the client accepts or rejects is its own decision (its validators follow
 * gRFC A27/A28), so this checks protocol conformance and NACK handling end to end.
 *
 * grpc-js-xds reads its bootstrap once per process (vitest gives each test file its own process)
 * and shares one xDS client and ADS stream between all channels. The scenario is one test on one
 * channel: closing the last channel ends that stream, and grpc-js-xds 1.14.1 lets the late status
 * of the ended stream reset the stream a new channel just opened, leaving a second, orphaned
 * stream subscribed on the server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as grpcJsXds from '@grpc/grpc-js-xds';
import { Cluster_LbPolicy } from '../../src/gen/envoy/config/cluster/v3/cluster.js';
import {
  ClientStatusDiscoveryServiceClient,
  ConfigStatus,
  type ClientConfig_GenericXdsConfig,
  type ClientStatusResponse,
} from '../../src/gen/envoy/service/status/v3/csds.js';
import { ClientResourceStatus } from '../../src/gen/envoy/admin/v3/config_dump_shared.js';
import type { ProxyStatusJson } from '../../src/xds/status.js';
import { TypeUrl } from '../../src/xds/types.js';
import { callWho, EchoClient, startBackend, type GrpcBackend } from '../helpers/grpc-backend.js';
import {
  grpcApiListener,
  grpcEdsCluster,
  grpcRoute,
  pgvViolations,
} from '../helpers/grpc-xds-resources.js';
import { endpoints } from '../helpers/resources.js';
import { metricValue, startXds, type XdsHarness } from '../helpers/xds-harness.js';
import { waitFor } from '../helpers/wait.js';

const NODE_ID = 'grpc-xds-client-test';
const TARGET = 'echo.isthmus.test';
const ROUTE = `${TARGET}-route`;
const CLUSTER = `${TARGET}-cluster`;
const WAIT = { timeoutMs: 10_000, intervalMs: 25 };

let h: XdsHarness;
let backendA: GrpcBackend;
let backendB: GrpcBackend;
let client: EchoClient | undefined;
/**
 * The type of every response the server wrote, in order (the push counter, wrapped: it counts but
 * has no order).
 */
const pushLog: string[] = [];

beforeAll(async () => {
  h = await startXds();
  [backendA, backendB] = await Promise.all([startBackend('A'), startBackend('B')]);
  // Read by grpc-js-xds when the first xds: channel resolves; the port is only known now.
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [
      { server_uri: h.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
    ],
    node: { id: NODE_ID, locality: { region: 'r1', zone: 'z1' } },
  });
  grpcJsXds.register();
  const counter = h.metrics.xdsPushes;
  const inc = counter.inc.bind(counter);
  counter.inc = ((labels: { type: string }) => {
    pushLog.push(labels.type);
    inc(labels);
  }) as typeof counter.inc;
});

afterAll(async () => {
  client?.close();
  await h?.close();
  await Promise.all([backendA?.close(), backendB?.close()]);
  delete process.env.GRPC_XDS_BOOTSTRAP_CONFIG;
});

interface ViewSpec {
  /** The EDS service name the cluster uses. */
  readonly serviceName?: string;
  readonly lbPolicy?: Cluster_LbPolicy;
  /** Backend port per EDS service name published. */
  readonly endpoints: Readonly<Record<string, number>>;
  /** Name of the route configuration's virtual host (a harmless RDS change). */
  readonly vhostSuffix?: string;
}

/** Replaces the node's view: the API listener TARGET, its route, its cluster and endpoints. */
function publish(spec: ViewSpec): void {
  const route = grpcRoute(ROUTE, CLUSTER);
  if (spec.vhostSuffix) route.virtualHosts[0]!.name += spec.vhostSuffix;
  const resources = [
    grpcApiListener(TARGET, ROUTE),
    route,
    grpcEdsCluster(CLUSTER, {
      serviceName: spec.serviceName ?? CLUSTER,
      lbPolicy: spec.lbPolicy ?? Cluster_LbPolicy.ROUND_ROBIN,
    }),
    ...Object.entries(spec.endpoints).map(([service, port]) => endpoints(service, [port])),
  ];
  // Envoy would accept every resource served here: a NACK is the client's own decision.
  expect(pgvViolations(resources)).toEqual([]);
  h.cache.setProxyResources(NODE_ID, resources);
}

/** Polls calls until one is answered by `backend` (earlier ones may fail or reach the other). */
async function waitForBackend(channel: EchoClient, backend: GrpcBackend): Promise<void> {
  await waitFor(async () => (await callWho(channel, 1_000)) === backend.name, {
    ...WAIT,
    what: `a call answered by backend ${backend.name}`,
  });
}

function proxy(): ProxyStatusJson | undefined {
  const mine = h.server.proxyStatus().filter((p) => p.ID === NODE_ID);
  expect(mine.length).toBeLessThanOrEqual(1);
  return mine[0];
}

function resourceOf(type: string, name: string) {
  return proxy()?.Resources.find((r) => r.Type === type && r.Name === name);
}

const pushes = (type: string) => metricValue(h.metrics, 'isthmus_xds_pushes_total', { type });
const rejects = (type: string) => metricValue(h.metrics, 'isthmus_xds_rejects_total', { type });

/**
 * The listener, route, cluster and `serviceName` endpoints ACKed at the versions the cache holds.
 */
async function waitSynced(serviceName: string): Promise<void> {
  const wanted: [string, string][] = [
    ['LDS', TARGET],
    ['RDS', ROUTE],
    ['CDS', CLUSTER],
    ['EDS', serviceName],
  ];
  await waitFor(
    () =>
      wanted.every(([type, name]) => {
        const r = resourceOf(type, name);
        return r?.Status === 'SYNCED' && r.AckedVersion === r.Version && r.Version !== '';
      }),
    {
      ...WAIT,
      what: `${wanted.map(([t, n]) => `${t} ${n}`).join(', ')} SYNCED; proxy status: ${JSON.stringify(proxy()?.Resources)}`,
    },
  );
}

/** CSDS FetchClientStatus for exactly NODE_ID, over gRPC; the entry of one resource. */
async function csdsEntry(
  typeUrl: string,
  name: string,
): Promise<ClientConfig_GenericXdsConfig | undefined> {
  const csds = new ClientStatusDiscoveryServiceClient(h.address, grpc.credentials.createInsecure());
  try {
    const res = await new Promise<ClientStatusResponse>((resolve, reject) =>
      csds.fetchClientStatus(
        {
          nodeMatchers: [
            {
              nodeId: { matchPattern: { $case: 'exact', value: NODE_ID }, ignoreCase: false },
              nodeMetadatas: [],
            },
          ],
          excludeResourceContents: true,
        },
        new grpc.Metadata(),
        { deadline: Date.now() + 5_000 },
        (err, r) => (err ? reject(err) : resolve(r!)),
      ),
    );
    expect(res.config.map((c) => c.node?.id)).toEqual([NODE_ID]);
    return res.config[0]!.genericXdsConfigs.find((g) => g.typeUrl === typeUrl && g.name === name);
  } finally {
    csds.close();
  }
}

describe('grpc-js-xds client against the ADS server', () => {
  it('routes real calls by LDS → RDS → CDS → EDS, follows EDS changes, and recovers from a NACKed cluster', async () => {
    // 1. The client walks its dependency chain, one response per type, and the call reaches A.
    publish({ endpoints: { [CLUSTER]: backendA.port } });
    client = new EchoClient(`xds:///${TARGET}`, grpc.credentials.createInsecure());
    await waitForBackend(client, backendA);
    await waitSynced(CLUSTER);
    expect(pushLog).toEqual(['LDS', 'RDS', 'CDS', 'EDS']);
    expect(backendB.served()).toBe(0);

    // 2. Moving the endpoint to B is an EDS-only push, and the next calls go to B.
    publish({ endpoints: { [CLUSTER]: backendB.port } });
    await waitForBackend(client, backendB);
    await waitSynced(CLUSTER);
    expect(pushLog).toEqual(['LDS', 'RDS', 'CDS', 'EDS', 'EDS']);
    for (let i = 0; i < 3; i++) expect(await callWho(client)).toBe('B');

    // 3. LEAST_REQUEST is valid Envoy config (publish checked validate.rules) that gRPC does not
    // support: the client NACKs the CDS response with its own reason.
    const goodVersion = resourceOf('CDS', CLUSTER)!.Version;
    const cdsPushes = await pushes('CDS');
    const cdsRejects = await rejects('CDS');
    publish({ lbPolicy: Cluster_LbPolicy.LEAST_REQUEST, endpoints: { [CLUSTER]: backendB.port } });
    const broken = await waitFor(
      () => {
        const r = resourceOf('CDS', CLUSTER);
        return r?.Status === 'ERROR' ? r : undefined;
      },
      {
        ...WAIT,
        what: `CDS ${CLUSTER} in ERROR; proxy status: ${JSON.stringify(proxy()?.Resources)}`,
      },
    );
    expect(broken.Version).not.toBe(goodVersion);
    expect(broken.AckedVersion).toBe(goodVersion);
    for (const message of [broken.Error, proxy()!.Types.CDS!.lastNack?.message]) {
      expect(message).toContain('Cluster message validation failed');
      expect(message).toContain('unsupported lb_policy: LEAST_REQUEST');
    }
    expect(proxy()!.Types.CDS!.status).toBe('ERROR');
    expect(await rejects('CDS')).toBe(cdsRejects + 1);
    expect(await pushes('CDS')).toBe(cdsPushes + 1);

    const csdsCluster = await csdsEntry(TypeUrl.cluster, CLUSTER);
    expect(csdsCluster).toMatchObject({
      configStatus: ConfigStatus.ERROR,
      clientStatus: ClientResourceStatus.NACKED,
      versionInfo: goodVersion,
    });
    expect(csdsCluster!.errorState?.versionInfo).toBe(broken.Version);
    expect(csdsCluster!.errorState?.details).toContain('unsupported lb_policy: LEAST_REQUEST');

    // Rule 5: the rejected content is not sent again, neither while nothing changes nor when
    // another resource of the view changes (RDS goes out, CDS stays put).
    const sinceNack = pushLog.length;
    await expectUnchangedFor(
      () => pushes('CDS'),
      300,
      'isthmus_xds_pushes_total{type="CDS"} after the NACK',
    );
    const rdsBefore = resourceOf('RDS', ROUTE)!.Version;
    publish({
      lbPolicy: Cluster_LbPolicy.LEAST_REQUEST,
      endpoints: { [CLUSTER]: backendB.port },
      vhostSuffix: '-2',
    });
    await waitFor(
      () => {
        const r = resourceOf('RDS', ROUTE);
        return r !== undefined && r.Version !== rdsBefore && r.Status === 'SYNCED';
      },
      { ...WAIT, what: `the changed RDS ${ROUTE} SYNCED` },
    );
    expect(pushLog.slice(sinceNack)).toContain('RDS');
    expect(pushLog.slice(sinceNack)).not.toContain('CDS');
    expect(await pushes('CDS')).toBe(cdsPushes + 1);
    expect(resourceOf('CDS', CLUSTER)).toMatchObject({
      Status: 'ERROR',
      Version: broken.Version,
      AckedVersion: goodVersion,
    });
    // The client keeps its last good cluster.
    for (let i = 0; i < 3; i++) expect(await callWho(client)).toBe('B');

    // 4. The next good version names a new EDS service whose only endpoint is A: calls reaching A
    // show the client applied this cluster version.
    const serviceV2 = `${CLUSTER}-v2`;
    publish({
      serviceName: serviceV2,
      endpoints: { [serviceV2]: backendA.port },
      vhostSuffix: '-2',
    });
    await waitForBackend(client, backendA);
    await waitSynced(serviceV2);
    const fixed = resourceOf('CDS', CLUSTER)!;
    expect(fixed).toMatchObject({ Status: 'SYNCED', AckedVersion: fixed.Version });
    expect([goodVersion, broken.Version]).not.toContain(fixed.Version);
    expect(proxy()!.Resources.filter((r) => r.Status !== 'SYNCED')).toEqual([]);
    expect(proxy()!.Types.CDS!.status).toBe('SYNCED');
    expect(await rejects('CDS')).toBe(cdsRejects + 1);
    expect(await csdsEntry(TypeUrl.cluster, CLUSTER)).toMatchObject({
      configStatus: ConfigStatus.SYNCED,
      clientStatus: ClientResourceStatus.ACKED,
      versionInfo: fixed.Version,
    });
    for (let i = 0; i < 3; i++) expect(await callWho(client)).toBe('A');
  });
});

/** Fails if `read` changes value during `ms` (a check beside a positive one, not a wait). */
async function expectUnchangedFor(
  read: () => Promise<number>,
  ms: number,
  what: string,
): Promise<void> {
  const initial = await read();
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 25));
    const now = await read();
    if (now !== initial) throw new Error(`${what} changed from ${initial} to ${now}`);
  }
}
