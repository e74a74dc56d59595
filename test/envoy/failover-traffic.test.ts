/**
 * Failover to a local subset and to a peer, for real (issue 16): two peered clusters (two
 * `isthmus server` processes), every proxy a real Envoy. B's `web` calls `api`; B has two `api`
 * instances (`version` v1 and v2) and a `service-resolver` whose default subset is v1, failing over
 * to subset v2, then to peer A's `api` (through A's mesh gateway). Instances go critical and
 * passing through the API, as a user would: requests move v1 → v2 → A and back to v1, each switch
 * within `switchBoundMs`; the requests lost during each switch are counted and printed. A second
 * resolver redirects `legacy` to A's `api`. Every config is ACKed.
 *
 * Sameness groups (§5b): B's default group (DefaultForFailover, members: B itself and peer A) makes
 * `cart`, which has no resolver, fail over to A's `cart` when B's instance goes critical and come
 * back when it passes. A exports `cart` to the members of its own group (`Consumers:
 * [{SamenessGroup}]`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MeshProcess, startMeshProcess } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes } from '../helpers/peered-mesh.js';
import { cleanupProcesses, runCli } from '../helpers/process.js';
import type { UpstreamReport } from '../../src/troubleshoot/index.js';
import { closeApps, httpCall, listenPort, startApp } from './apps.js';
import {
  cleanupEnvoys,
  dumpSection,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
  waitHealthy,
} from './harness.js';
import { eventually, meshGateway, startPlacedProxy, waitAllSynced, withSidecar } from './mesh.js';
import { LoadLoop } from './traffic.js';

/**
 * The bound on a switch, from the health change through the API to the first answer from the other
 * side: the server's coalescing (20 ms here), one EDS push, Envoy applying it. Typically well under
 * a second; generous because the machine running the tests may be loaded.
 */
const switchBoundMs = 15_000;
/** Answers of each connection kind a phase needs before it is judged. */
const enough = 20;

describe.skipIf(skipWithoutEnvoy())(
  'failover to a local subset and to a peer, redirect to a peer, real Envoy',
  () => {
    let a: MeshProcess;
    let b: MeshProcess;
    let tdA: string;
    let web: EnvoyProcess;
    const envoys: { node: MeshProcess; envoy: EnvoyProcess }[] = [];
    const port = { api: 0, legacy: 0, cart: 0 };
    let load: LoadLoop | undefined;

    showEnvoyLogsOnFailure();

    beforeAll(async () => {
      ({ a, b } = await startPeeredMeshes({}, {}, startMeshProcess));
      tdA = await a.trustDomain();
      await a.register(meshGateway('gw-a', await listenPort()));
      const apiA = await startApp('http', 'api-a');
      const apiB1 = await startApp('http', 'api-b-v1');
      const apiB2 = await startApp('http', 'api-b-v2');
      for (const node of [a, b])
        await node.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
      await a.register(withSidecar('api', apiA.port, await listenPort()));
      await a.putConfig({
        Kind: 'sameness-group',
        Name: 'shop',
        Members: [{ Partition: 'default' }, { Peer: 'cluster-b' }],
      });
      await a.putConfig({
        ...exportEntry({ api: ['cluster-b'] }),
        Services: [
          ...exportEntry({ api: ['cluster-b'] }).Services,
          { Name: 'cart', Consumers: [{ SamenessGroup: 'shop' }] },
        ],
      });
      await b.putConfig({
        Kind: 'sameness-group',
        Name: 'shop',
        DefaultForFailover: true,
        Members: [{ Partition: 'default' }, { Peer: 'cluster-a' }],
      });
      const cartA = await startApp('http', 'cart-a');
      const cartB = await startApp('http', 'cart-b');
      for (const node of [a, b])
        await node.putConfig({ Kind: 'service-defaults', Name: 'cart', Protocol: 'http' });
      await a.register(withSidecar('cart', cartA.port, await listenPort()));
      await b.register(withSidecar('cart', cartB.port, await listenPort()));
      for (const [version, app] of [
        ['v1', apiB1],
        ['v2', apiB2],
      ] as const)
        await b.register({
          ...withSidecar('api', app.port, await listenPort()),
          ID: `api-${version}`,
          Meta: { version },
        });
      port.api = await listenPort();
      port.legacy = await listenPort();
      port.cart = await listenPort();
      await b.register(
        withSidecar('web', await listenPort(), await listenPort(), [
          { DestinationName: 'api', LocalBindPort: port.api },
          { DestinationName: 'legacy', LocalBindPort: port.legacy },
          { DestinationName: 'cart', LocalBindPort: port.cart },
        ]),
      );
      await b.putConfig({
        Kind: 'service-resolver',
        Name: 'api',
        DefaultSubset: 'v1',
        Subsets: {
          v1: { Filter: 'Service.Meta.version == v1' },
          v2: { Filter: 'Service.Meta.version == v2' },
        },
        ConnectTimeout: '3s',
        Failover: { '*': { Targets: [{ ServiceSubset: 'v2' }, { Peer: 'cluster-a' }] } },
      });
      await b.putConfig({
        Kind: 'service-resolver',
        Name: 'legacy',
        Redirect: { Service: 'api', Peer: 'cluster-a' },
      });
      const started = await Promise.all([
        startPlacedProxy(a, 'gw-a', { kind: 'mesh-gateway', datacenter: 'dc-a' }),
        startPlacedProxy(a, 'api-sidecar-proxy', { datacenter: 'dc-a' }),
        ...['api-v1', 'api-v2'].map((id) =>
          startPlacedProxy(b, `${id}-sidecar-proxy`, { datacenter: 'dc-b' }),
        ),
        startPlacedProxy(b, 'web-sidecar-proxy', { datacenter: 'dc-b' }),
        ...[a, b].map((node) =>
          startPlacedProxy(node, 'cart-sidecar-proxy', {
            datacenter: node === a ? 'dc-a' : 'dc-b',
          }),
        ),
      ]);
      envoys.push(...started);
      web = started[4]!.envoy;
    });

    afterAll(async () => {
      await load?.stop();
      await cleanupEnvoys();
      await closeApps();
      await Promise.all([a?.close(), b?.close()]);
      await cleanupProcesses();
    });

    it('every Envoy is LIVE with nothing rejected, and SYNCED', async () => {
      await waitAllSynced(envoys);
    });

    it("web's api is an aggregate cluster over B's v1, B's v2 and A's api, named as Consul names them, without panic mode", async () => {
      const primary = `v1.api.default.dc-b.internal.${await b.trustDomain()}`;
      const members = [0, 1, 2].map((i) => `failover-target~${i}~${primary}`);
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
      const peerTls = JSON.stringify(clusters.get(members[2]!));
      expect(peerTls).toContain(`api.default.default.cluster-b.external.${tdA}`);
      await waitHealthy(web);
    });

    it(`v1 critical → v2; v2 critical → peer A; v1 passing → v1; each switch within ${switchBoundMs} ms`, async () => {
      load = new LoadLoop(port.api, { keepAliveWorkers: 2, freshWorkers: 2 });
      load.phase('baseline');
      const baseline = await load.waitForSuccesses(enough, { app: 'api-b-v1' });
      expect(baseline.failures).toEqual({});
      expect(baseline.byApp).toEqual({ 'api-b-v1': baseline.ok });

      const switches: string[] = [];
      for (const [instance, status, from, to] of [
        ['api-v1', 'fail', 'api-b-v1', 'api-b-v2'],
        ['api-v2', 'fail', 'api-b-v2', 'api-a'],
        ['api-v1', 'pass', 'api-a', 'api-b-v1'],
      ] as const) {
        const phase = load.phase(`${from} → ${to}`);
        const started = Date.now();
        const check = `/v1/agent/check/${status}/service:${instance}`;
        expect((await b.api('PUT', check)).status).toBe(200);
        const during = await load.waitForSuccesses(1, { app: to, timeoutMs: switchBoundMs });
        const firstAnswer = during.outcomes.find((o) => o.app === to)?.at ?? Number.NaN;
        // Once the switch is seen, every answer comes from the new side.
        load.phase(`after ${from} → ${to}`);
        const after = await load.waitForSuccesses(enough, { app: to });
        const counts = load.counts(phase);
        switches.push(
          `${from} → ${to} (${instance} ${status}): first answer from ${to} ${firstAnswer - started} ms after the check changed; ` +
            `${counts.ok} answered ${JSON.stringify(counts.byApp)}, ${counts.failed} lost ${JSON.stringify(counts.failures)}`,
        );
        expect(firstAnswer - started).toBeLessThan(switchBoundMs);
        expect(after.byApp, `only ${to} answers after the switch`).toEqual({ [to]: after.ok });
        expect(after.failures).toEqual({});
        expect(counts.failed, `requests lost switching ${from} → ${to}`).toBe(0);
      }
      console.log(`failover (bound ${switchBoundMs} ms):\n  ${switches.join('\n  ')}`);
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

    /**
     * `troubleshoot upstream` while cart is failed over: the chain came from the sameness group,
     * B's target has no healthy instance, A's has one, and Envoy ACKed all three clusters.
     */
    async function troubleshootFailedOver(): Promise<void> {
      const path = '/v1/troubleshoot/upstream/web-sidecar-proxy/cart';
      const report = await eventually(async () => {
        const res = await b.api<UpstreamReport>('GET', path);
        const envoy = res.body.Targets?.map((t) => t.Envoy) ?? [];
        if (res.status !== 200 || envoy.some((e) => e !== 'SYNCED'))
          throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
        return res.body;
      }, 'troubleshoot upstream cart');
      expect(report.OK).toBe(true);
      expect(report.Chain).toMatchObject({
        Service: 'cart',
        Resolver: false,
        FailoverFrom: 'sameness-group shop (DefaultForFailover)',
      });
      expect(report.Targets.map((t) => `${t.ID} ${t.Healthy}/${t.Total}`)).toEqual([
        'cart.default.default.dc-b 0/1',
        'cart.default.default.external.cluster-a 1/1',
      ]);
      const cli = await runCli([
        'troubleshoot',
        'upstream',
        'web-sidecar-proxy',
        'cart',
        '--http-addr',
        b.httpAddress,
      ]);
      expect(cli.stderr).toBe('');
      expect(cli.code, cli.stdout).toBe(0);
      expect(cli.stdout).toContain(
        '✓ a target with healthy instances: traffic goes to cart.default.default.external.cluster-a (1 of 1 healthy)',
      );
    }

    it(`sameness group, no resolver: cart fails over to peer A's cart and back, each switch within ${switchBoundMs} ms`, async () => {
      load = new LoadLoop(port.cart, { keepAliveWorkers: 2, freshWorkers: 2 });
      load.phase('baseline');
      const baseline = await load.waitForSuccesses(enough, { app: 'cart-b' });
      expect(baseline.byApp).toEqual({ 'cart-b': baseline.ok });
      const switches: string[] = [];
      for (const [status, from, to] of [
        ['fail', 'cart-b', 'cart-a'],
        ['pass', 'cart-a', 'cart-b'],
      ] as const) {
        const phase = load.phase(`${from} → ${to}`);
        const started = Date.now();
        expect((await b.api('PUT', `/v1/agent/check/${status}/service:cart`)).status).toBe(200);
        const during = await load.waitForSuccesses(1, { app: to, timeoutMs: switchBoundMs });
        const firstAnswer = during.outcomes.find((o) => o.app === to)?.at ?? Number.NaN;
        load.phase(`after ${from} → ${to}`);
        const after = await load.waitForSuccesses(enough, { app: to });
        const counts = load.counts(phase);
        switches.push(
          `${from} → ${to} (cart ${status}): first answer from ${to} ${firstAnswer - started} ms after the check changed; ` +
            `${counts.ok} answered ${JSON.stringify(counts.byApp)}, ${counts.failed} lost ${JSON.stringify(counts.failures)}`,
        );
        expect(firstAnswer - started).toBeLessThan(switchBoundMs);
        expect(after.byApp, `only ${to} answers after the switch`).toEqual({ [to]: after.ok });
        expect(counts.failed, `requests lost switching ${from} → ${to}`).toBe(0);
        if (status === 'fail') await troubleshootFailedOver();
      }
      console.log(`sameness failover (bound ${switchBoundMs} ms):\n  ${switches.join('\n  ')}`);
      await load.stop();
      load = undefined;
      await waitHealthy(web);
    });
  },
);
