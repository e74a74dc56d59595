/**
 * Failover to a peer, for real (issue 16): two peered clusters (two `isthmus server` processes),
 * every proxy a real Envoy. B's `web` calls `api`; B has its own `api`, and a `service-resolver`
 * that fails over to peer A's `api` (through A's mesh gateway). While B's api passes, requests reach
 * B's; when its instance goes critical (through the API, as a user would) requests reach A's within
 * `switchBoundMs`, and come back when it passes again. Requests lost during each switch are
 * counted and printed. A second resolver redirects `legacy` to A's `api`. Every config is ACKed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MeshProcess, startMeshProcess } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes } from '../helpers/peered-mesh.js';
import { cleanupProcesses } from '../helpers/process.js';
import { closeApps, httpCall, listenPort, startApp } from './apps.js';
import {
  cleanupEnvoys,
  dumpSection,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
  waitHealthy,
} from './harness.js';
import { eventually, meshGateway, startProxy, waitSynced, withSidecar } from './mesh.js';
import { LoadLoop } from './traffic.js';

/**
 * The bound on a switch, from the health change through the API to the first answer from the other
 * side: the server's coalescing (20 ms here), one EDS push, Envoy applying it. Typically well under
 * a second; generous because the machine running the tests may be loaded.
 */
const switchBoundMs = 15_000;
/** Answers of each connection kind a phase needs before it is judged. */
const enough = 20;

describe.skipIf(skipWithoutEnvoy())('failover to a peer and redirect to a peer, real Envoy', () => {
  let a: MeshProcess;
  let b: MeshProcess;
  let tdA: string;
  let web: EnvoyProcess;
  const envoys: { node: MeshProcess; envoy: EnvoyProcess }[] = [];
  const port = { api: 0, legacy: 0 };
  let load: LoadLoop | undefined;

  showEnvoyLogsOnFailure();

  beforeAll(async () => {
    ({ a, b } = await startPeeredMeshes({}, {}, startMeshProcess));
    tdA = await a.trustDomain();
    await a.register(meshGateway('gw-a', await listenPort()));
    const apiA = await startApp('http', 'api-a');
    const apiB = await startApp('http', 'api-b');
    for (const node of [a, b])
      await node.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    await a.register(withSidecar('api', apiA.port, await listenPort()));
    await a.putConfig(exportEntry({ api: ['cluster-b'] }));
    await b.register(withSidecar('api', apiB.port, await listenPort()));
    port.api = await listenPort();
    port.legacy = await listenPort();
    await b.register(
      withSidecar('web', await listenPort(), await listenPort(), [
        { DestinationName: 'api', LocalBindPort: port.api },
        { DestinationName: 'legacy', LocalBindPort: port.legacy },
      ]),
    );
    await b.putConfig({
      Kind: 'service-resolver',
      Name: 'api',
      ConnectTimeout: '3s',
      Failover: { '*': { Targets: [{ Peer: 'cluster-a' }] } },
    });
    await b.putConfig({
      Kind: 'service-resolver',
      Name: 'legacy',
      Redirect: { Service: 'api', Peer: 'cluster-a' },
    });
    const started = await Promise.all([
      startProxy(a, 'gw-a', { kind: 'mesh-gateway', datacenter: 'dc-a' }).then((envoy) => ({
        node: a,
        envoy,
      })),
      startProxy(a, 'api-sidecar-proxy', { datacenter: 'dc-a' }).then((envoy) => ({
        node: a,
        envoy,
      })),
      startProxy(b, 'api-sidecar-proxy', { datacenter: 'dc-b' }).then((envoy) => ({
        node: b,
        envoy,
      })),
      startProxy(b, 'web-sidecar-proxy', { datacenter: 'dc-b' }).then((envoy) => ({
        node: b,
        envoy,
      })),
    ]);
    envoys.push(...started);
    web = started[3]!.envoy;
  });

  afterAll(async () => {
    await load?.stop();
    await cleanupEnvoys();
    await closeApps();
    await Promise.all([a?.close(), b?.close()]);
    await cleanupProcesses();
  });

  it('every Envoy is LIVE with nothing rejected, and SYNCED', async () => {
    for (const { node, envoy } of envoys) {
      await waitHealthy(envoy);
      await waitSynced(node, envoy.name);
    }
  });

  it("web's api is an aggregate cluster over B's api and A's, named as Consul names them, without panic mode", async () => {
    const primary = `api.default.dc-b.internal.${await b.trustDomain()}`;
    const members = [`failover-target~0~${primary}`, `failover-target~1~${primary}`];
    const clusters = await eventually(async () => {
      const dump = await web.configDump();
      const active = (dumpSection(dump, 'ClustersConfigDump')?.dynamic_active_clusters ?? []) as {
        cluster: Record<string, unknown> & { name: string };
      }[];
      const byName = new Map(active.map((c) => [c.cluster.name, c.cluster]));
      for (const name of [primary, ...members])
        if (!byName.has(name)) throw new Error(`no cluster ${name} yet`);
      return byName;
    }, "web's failover clusters");
    expect(clusters.get(primary)).toMatchObject({
      cluster_type: {
        name: 'envoy.clusters.aggregate',
        typed_config: { clusters: members },
      },
      lb_policy: 'CLUSTER_PROVIDED',
    });
    for (const m of members)
      expect(clusters.get(m), m).toMatchObject({
        common_lb_config: { healthy_panic_threshold: {} },
        outlier_detection: {},
        connect_timeout: '3s',
      });
    // The peer member dials A's gateway with the SNI A replicated.
    const peerTls = JSON.stringify(clusters.get(members[1]!));
    expect(peerTls).toContain(`api.default.default.cluster-b.external.${tdA}`);
    await waitHealthy(web);
  });

  it(`B's api goes critical: requests reach A's api within ${switchBoundMs} ms; back to passing: they return to B's`, async () => {
    load = new LoadLoop(port.api, { keepAliveWorkers: 2, freshWorkers: 2 });
    load.phase('baseline');
    const baseline = await load.waitForSuccesses(enough, { app: 'api-b' });
    expect(baseline.failures).toEqual({});
    expect(baseline.byApp).toEqual({ 'api-b': baseline.ok });

    const switches: string[] = [];
    for (const [status, from, to] of [
      ['fail', 'api-b', 'api-a'],
      ['pass', 'api-a', 'api-b'],
    ] as const) {
      const phase = load.phase(`${from} → ${to}`);
      const started = Date.now();
      expect((await b.api('PUT', `/v1/agent/check/${status}/service:api`)).status).toBe(200);
      const during = await load.waitForSuccesses(1, { app: to, timeoutMs: switchBoundMs });
      const firstAnswer = during.outcomes.find((o) => o.app === to)!.at;
      // Once the switch is seen, every answer comes from the new side.
      load.phase(`after ${to}`);
      const after = await load.waitForSuccesses(enough, { app: to });
      const counts = load.counts(phase);
      switches.push(
        `${from} → ${to}: first answer from ${to} ${firstAnswer - started} ms after the check went ${status}; ` +
          `${counts.ok} answered (${JSON.stringify(counts.byApp)}), ${counts.failed} lost ${JSON.stringify(counts.failures)}`,
      );
      expect(firstAnswer - started).toBeLessThan(switchBoundMs);
      expect(after.byApp, `only ${to} answers after the switch`).toEqual({ [to]: after.ok });
      expect(after.failures).toEqual({});
      expect(counts.failed, `requests lost switching ${from} → ${to}`).toBe(0);
    }
    console.log(`failover to peer (${switchBoundMs} ms bound):\n  ${switches.join('\n  ')}`);
    await load.stop();
    load = undefined;
    await waitHealthy(web);
  });

  it("a resolver redirecting legacy to peer A's api: legacy's requests reach A's api", async () => {
    const res = await eventually(async () => {
      const r = await httpCall(port.legacy, '/legacy');
      if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
      return r;
    }, 'web → legacy (redirected to cluster-a api)');
    expect(res.seen).toMatchObject({ app: 'api-a', path: '/legacy' });
    const clusters = await web.clusters();
    expect([...clusters.keys()]).toContain(`api.default.cluster-a.external.${tdA}`);
    await waitHealthy(web);
  });
});
