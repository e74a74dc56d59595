/**
 * Routers and splitters, for real (issue 16): two peered clusters (two `isthmus server`
 * processes), every proxy a real Envoy. B's `web` calls `api` and `flaky`. `api` has a splitter
 * (90 % to B's subset v1, 10 % to peer A's `api` through A's mesh gateway) behind a router that
 * sends `/v2/` to `api-v2` with the prefix rewritten to `/`. `flaky` has two instances, one
 * answering 503 to everything, and a router whose destination retries on 503.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MeshProcess, startMeshProcess } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes } from '../helpers/peered-mesh.js';
import { cleanupProcesses } from '../helpers/process.js';
import {
  type HttpResult,
  closeApps,
  httpCall,
  listenPort,
  startApp,
  startHttpApp,
} from './apps.js';
import {
  cleanupEnvoys,
  dumpSection,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
  waitHealthy,
} from './harness.js';
import { eventually, meshGateway, startPlacedProxy, waitAllSynced, withSidecar } from './mesh.js';

/**
 * The split is measured over `splitRequests` requests. Envoy picks a weighted cluster at random
 * per request, so the peer's count is binomial: n = 2000, p = 0.10 gives σ = √(p(1−p)/n) ≈ 0.67
 * percentage points, and the ±3 point tolerance is about 4.5σ (a false failure about once in
 * 100,000 runs) while a wrong weight (say 80/20 or 95/5) is far outside it.
 */
const splitRequests = 2000;
const tolerancePoints = 3;

/** `n` requests, `concurrency` at a time, each on a fresh connection. */
async function callMany(port: number, path: string, n: number, concurrency: number) {
  const results: HttpResult[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      results.push(await httpCall(port, path));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

function byApp(results: readonly HttpResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    const key = r.status === 200 ? (r.seen?.app ?? '?') : `HTTP ${r.status}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

describe.skipIf(skipWithoutEnvoy())('service-splitter and service-router, real Envoy', () => {
  let a: MeshProcess;
  let b: MeshProcess;
  let web: EnvoyProcess;
  const envoys: { node: MeshProcess; envoy: EnvoyProcess }[] = [];
  const port = { api: 0, flaky: 0 };
  let failing: { seen: readonly unknown[] };

  showEnvoyLogsOnFailure();

  beforeAll(async () => {
    ({ a, b } = await startPeeredMeshes({}, {}, startMeshProcess));
    await a.register(meshGateway('gw-a', await listenPort()));
    const apiA = await startApp('http', 'api-a');
    const apiB = await startApp('http', 'api-b-v1');
    const apiV2 = await startApp('http', 'api-v2');
    const flakyOk = await startApp('http', 'flaky-ok');
    const flakyBad = await startHttpApp('flaky-bad', 0, { status: 503 });
    failing = flakyBad;
    await a.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    for (const name of ['api', 'api-v2', 'flaky'])
      await b.putConfig({ Kind: 'service-defaults', Name: name, Protocol: 'http' });
    await a.register(withSidecar('api', apiA.port, await listenPort()));
    await a.putConfig(exportEntry({ api: ['cluster-b'] }));
    await b.register({
      ...withSidecar('api', apiB.port, await listenPort()),
      ID: 'api-v1',
      Meta: { version: 'v1' },
    });
    await b.register(withSidecar('api-v2', apiV2.port, await listenPort()));
    for (const [id, app] of [
      ['flaky-ok', flakyOk],
      ['flaky-bad', flakyBad],
    ] as const)
      await b.register({ ...withSidecar('flaky', app.port, await listenPort()), ID: id });
    port.api = await listenPort();
    port.flaky = await listenPort();
    await b.register(
      withSidecar('web', await listenPort(), await listenPort(), [
        { DestinationName: 'api', LocalBindPort: port.api },
        { DestinationName: 'flaky', LocalBindPort: port.flaky },
      ]),
    );
    await b.putConfig({
      Kind: 'service-resolver',
      Name: 'api',
      DefaultSubset: 'v1',
      Subsets: { v1: { Filter: 'Service.Meta.version == v1' } },
    });
    await b.putConfig({
      Kind: 'service-splitter',
      Name: 'api',
      Splits: [
        { Weight: 90, ServiceSubset: 'v1' },
        { Weight: 10, Peer: 'cluster-a' },
      ],
    });
    await b.putConfig({
      Kind: 'service-router',
      Name: 'api',
      Routes: [
        {
          Match: { HTTP: { PathPrefix: '/v2/' } },
          Destination: { Service: 'api-v2', PrefixRewrite: '/' },
        },
      ],
    });
    await b.putConfig({
      Kind: 'service-router',
      Name: 'flaky',
      Routes: [
        {
          Match: { HTTP: { PathPrefix: '/' } },
          Destination: { NumRetries: 3, RetryOnStatusCodes: [503] },
        },
      ],
    });
    const started = await Promise.all([
      startPlacedProxy(a, 'gw-a', { kind: 'mesh-gateway', datacenter: 'dc-a' }),
      startPlacedProxy(a, 'api-sidecar-proxy', { datacenter: 'dc-a' }),
      ...['api-v1', 'api-v2', 'flaky-ok', 'flaky-bad'].map((id) =>
        startPlacedProxy(b, `${id}-sidecar-proxy`, { datacenter: 'dc-b' }),
      ),
      startPlacedProxy(b, 'web-sidecar-proxy', { datacenter: 'dc-b' }),
    ]);
    envoys.push(...started);
    web = started[started.length - 1]!.envoy;
  });

  afterAll(async () => {
    await cleanupEnvoys();
    await closeApps();
    await Promise.all([a?.close(), b?.close()]);
    await cleanupProcesses();
  });

  it('every Envoy is LIVE with nothing rejected, and SYNCED', async () => {
    await waitAllSynced(envoys);
  });

  it("web's api route config is named as the upstream and uses Consul's cluster names", async () => {
    const tdA = await a.trustDomain();
    const tdB = await b.trustDomain();
    const v1 = `v1.api.default.dc-b.internal.${tdB}`;
    const peer = `api.default.cluster-a.external.${tdA}`;
    const v2 = `api-v2.default.dc-b.internal.${tdB}`;
    const routes = await eventually(async () => {
      const dump = await web.configDump();
      const dynamic = (dumpSection(dump, 'RoutesConfigDump')?.dynamic_route_configs ?? []) as {
        route_config: { name: string; virtual_hosts: { routes: unknown[] }[] };
      }[];
      const api = dynamic.find((r) => r.route_config.name === 'api')?.route_config;
      const text = JSON.stringify(api ?? {});
      if (!text.includes(peer)) throw new Error("no route to A's api yet");
      return api!.virtual_hosts[0]!.routes;
    }, "web's api routes with the peer's split");
    expect(routes).toMatchObject([
      {
        match: { prefix: '/v2/' },
        route: { cluster: v2, prefix_rewrite: '/' },
      },
      {
        match: { prefix: '/' },
        route: {
          weighted_clusters: {
            clusters: [
              { name: v1, weight: 9000 },
              { name: peer, weight: 1000 },
            ],
          },
        },
      },
    ]);
    await waitHealthy(web);
  });

  it(`a 90/10 split between B's subset v1 and peer A's api holds over ${splitRequests} requests (±${tolerancePoints} points)`, async () => {
    // The peer's cluster may still be warming up after its route arrived.
    await eventually(async () => {
      const r = await callMany(port.api, '/split', 50, 5);
      if (!r.some((x) => x.seen?.app === 'api-a')) throw new Error('no answer from A yet');
    }, "first answers from A's api");
    const results = await callMany(port.api, '/split', splitRequests, 8);
    const counts = byApp(results);
    const peerShare = ((counts['api-a'] ?? 0) / splitRequests) * 100;
    console.log(
      `split over ${splitRequests} requests: ${JSON.stringify(counts)}; A's share ${peerShare.toFixed(2)} % (expected 10 ± ${tolerancePoints})`,
    );
    expect(Object.keys(counts).sort()).toEqual(['api-a', 'api-b-v1']);
    expect(Math.abs(peerShare - 10)).toBeLessThanOrEqual(tolerancePoints);
  });

  it('the router sends /v2/ to api-v2 with the prefix rewritten, the rest to the split', async () => {
    const res = await eventually(async () => {
      const r = await httpCall(port.api, '/v2/hello?x=1');
      if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
      return r;
    }, 'web → api /v2/hello');
    expect(res.seen).toMatchObject({ app: 'api-v2', path: '/hello?x=1' });
    const other = await httpCall(port.api, '/v2');
    expect(['api-b-v1', 'api-a']).toContain(other.seen?.app);
  });

  it('retries on 503 hide the instance that always fails: no request fails', async () => {
    const n = 200;
    const results = await callMany(port.flaky, '/work', n, 1);
    const counts = byApp(results);
    console.log(
      `retries: ${n} requests → ${JSON.stringify(counts)}; the failing instance answered ${failing.seen.length} attempts with 503`,
    );
    expect(counts).toEqual({ 'flaky-ok': n });
    // The failing instance was tried (and retried away from), not merely unused.
    expect(failing.seen.length).toBeGreaterThan(0);
  });
});
