/**
 * Changes under traffic (issue "Real Envoy in the loop"): two peered clusters (then a third), every
 * proxy a real Envoy. A exports `api` (HTTP) and `api-tcp` (TCP) to B through A's mesh gateway; B's
 * `web` calls them in gateway mode `remote`. While a load loop sends HTTP/1.1 requests from B's app
 * through B's sidecar and A's gateway to A's `api` (over kept-alive and over new connections), and
 * a WebSocket (to `api`) and a TCP connection (to `api-tcp`) stay open exchanging messages, the
 * test changes the mesh one way after another and holds what a user must be able to rely on:
 *
 * 1. an endpoint move in A: new requests reach the new instance, none fails;
 * 2. unexport: B's requests are refused at once (no hang), B's Envoy drops the upstream; re-export
 *    restores it; the other exported service's open connection is untouched;
 * 3. a CA rotation in A, then in B: not one request fails, open connections stay open, and
 *    afterwards every Envoy holds leaves from the new root and no trace of the old one;
 * 4. A's gateway re-registered on a new port: the gateway's Envoy and B's endpoints follow;
 * 5. a new peer C: B's traffic and open connections are untouched, C's app calls A's `api`;
 * 6. deleting the peering (on A, then the other one on its dialer C): nothing derived from the
 *    peer stays in any Envoy's `/config_dump`, by name or content, and calls are refused at once.
 *
 * What each change does to open connections and new ones is recorded per step and printed as a
 * table at the end. Behaviour that is Envoy's to choose is recorded, not asserted.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RootKeyFiles } from '../../src/ca/root-key-files.js';
import { createRoot, issueLeaf, loadSigner } from '../../src/ca/x509.js';
import { startMeshProcess } from '../helpers/mesh-server.js';
import { exportEntry, peerClusters, startPeeredMeshes } from '../helpers/peered-mesh.js';
import { cleanupProcesses } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';
import { type App, closeApps, httpCall, listenPort, startHttpApp, startTcpApp } from './apps.js';
import {
  dumpFilterChains,
  dumpSecrets,
  dumpText,
  envoyCerts,
  pemMark,
  serialOf,
  signedBy,
} from './dumps.js';
import {
  cleanupEnvoys,
  dumpNames,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
  waitHealthy,
} from './harness.js';
import {
  eventually,
  type MeshProcess,
  meshGateway,
  startProxy,
  waitSynced,
  withSidecar,
} from './mesh.js';
import {
  LoadLoop,
  type LongLived,
  mtlsRequest,
  openTcp,
  openWebSocket,
  type PhaseCounts,
} from './traffic.js';

/** Each CA rotation phase (trust both → new leaves → retire the old root) lasts this long. */
const phaseMs = 3_000;
/**
 * After a change converged, traffic keeps running this long before the step is judged: longer than
 * Envoy's drain time (1 s in the harness), so drained connections have been closed.
 */
const observeMs = 3_000;
/** Answers of each connection kind a window needs before it is judged. */
const enough = 15;
const refusals = new Set(['ECONNREFUSED', 'ECONNRESET', 'HTTP 503']);

interface Row {
  readonly change: string;
  readonly during: PhaseCounts;
  readonly after: PhaseCounts;
  readonly webSocket: string;
  readonly tcp: string;
}

describe.skipIf(skipWithoutEnvoy())(
  'changes under traffic between peered clusters with real Envoys',
  () => {
    let a: MeshProcess;
    let b: MeshProcess;
    let c: MeshProcess | undefined;
    const td = { a: '', b: '', c: '' };
    /** Every root certificate each cluster ever had (a rotation adds one). */
    const roots = { a: [] as string[], b: [] as string[], c: [] as string[] };
    const port = {
      apiSidecar: 0,
      apiTcpSidecar: 0,
      gateway: 0,
      webApi: 0,
      webApiTcp: 0,
      mobileApi: 0,
    };
    const envoy: Record<'gw' | 'api' | 'apiTcp' | 'web', EnvoyProcess> & { mobile?: EnvoyProcess } =
      {} as never;
    let api: App;
    /** The app now answering for `api` (its answers and WebSocket echoes carry its name). */
    let apiName = 'api';
    let load: LoadLoop;
    let loadC: LoadLoop | undefined;
    let ws: LongLived;
    let tcp: LongLived;
    let peeredAB = true;
    const rows: Row[] = [];

    showEnvoyLogsOnFailure();

    const a_ = (): EnvoyProcess[] => [envoy.gw, envoy.api, envoy.apiTcp];
    const all = (): EnvoyProcess[] => [...a_(), envoy.web, ...(envoy.mobile ? [envoy.mobile] : [])];

    async function rootPems(node: MeshProcess): Promise<{ active: string; pems: string[] }> {
      const res = await node.api<{
        ActiveRootID: string;
        Roots: { ID: string; RootCert: string; Active: boolean }[];
      }>('GET', '/v1/connect/ca/roots');
      return { active: res.body.ActiveRootID, pems: res.body.Roots.map((r) => r.RootCert) };
    }

    /** Opens the long-lived connections again where a change ended them. */
    async function ensureLongLived(): Promise<void> {
      if (!ws || ws.state().ended)
        ws = await eventually(
          () => openWebSocket(port.webApi, apiName),
          'a WebSocket from web to api',
        );
      if (!tcp || tcp.state().ended)
        tcp = await eventually(
          () => openTcp(port.webApiTcp, 'api-tcp'),
          'a TCP connection from web to api-tcp',
        );
    }

    /**
     * What happened to a long-lived connection since the step began: it still exchanges, or how it
     * ended.
     */
    async function fate(l: LongLived, since: number): Promise<string> {
      await l.exchange().catch(() => undefined);
      const s = l.state();
      return s.ended
        ? `closed ${((s.ended.at - since) / 1000).toFixed(1)} s into the step (${s.ended.why})`
        : 'open, still exchanging';
    }

    /**
     * Judges a step: `during` is the phase from the change until it converged; then a window of
     * `observeMs` with `enough` answers (from the app now answering) of each connection kind.
     */
    async function afterWindow(name: string, loop = load, app = apiName): Promise<PhaseCounts> {
      loop.phase(`${name}: after`);
      const until = Date.now() + observeMs;
      await loop.waitForSuccesses(enough, { app });
      await waitFor(() => Date.now() >= until, {
        timeoutMs: observeMs + 1_000,
        what: 'the observation window',
      });
      return loop.counts(`${name}: after`);
    }

    async function record(
      change: string,
      during: PhaseCounts,
      after: PhaseCounts,
      since: number,
    ): Promise<Row> {
      const row = {
        change,
        during,
        after,
        webSocket: await fate(ws, since),
        tcp: await fate(tcp, since),
      };
      rows.push(row);
      return row;
    }

    /**
     * Every Envoy accepted every update isthmus sent, and none waited out its initial fetch timeout
     * for a resource isthmus should have sent (a cluster warming without its endpoints, a listener
     * without its route): counters over the Envoy's whole life, so they cover every change so far.
     */
    async function expectEverythingAccepted(): Promise<void> {
      for (const e of all()) {
        const stats = await e.stats();
        const bad = Object.entries(stats).filter(
          ([k, v]) =>
            (k.endsWith('.update_rejected') || k.endsWith('.init_fetch_timeout')) && v > 0,
        );
        expect(
          Object.fromEntries(bad),
          `${e.name}: rejected updates or initial fetch timeouts`,
        ).toEqual({});
      }
    }

    /**
     * Waits until `fn` holds for every Envoy in `envoys` (its config dump), naming the first that
     * does not.
     */
    async function everyDump(
      envoys: readonly EnvoyProcess[],
      what: string,
      fn: (
        e: EnvoyProcess,
        dump: Awaited<ReturnType<EnvoyProcess['configDump']>>,
      ) => string | undefined,
    ): Promise<void> {
      let last = '';
      await waitFor(
        async () => {
          for (const e of envoys) {
            const problem = fn(e, await e.configDump());
            if (problem) {
              last = `${e.name}: ${problem}`;
              return false;
            }
          }
          return true;
        },
        { timeoutMs: 60_000, intervalMs: 200, what: `${what} (last: ${last})` },
      ).catch((err: Error) => {
        throw new Error(`${err.message}; last: ${last}`);
      });
    }

    beforeAll(async () => {
      const flags = { caRotationPhaseMs: String(phaseMs) };
      ({ a, b } = await startPeeredMeshes(flags, flags, startMeshProcess));
      [td.a, td.b] = [await a.trustDomain(), await b.trustDomain()];
      roots.a.push(...(await rootPems(a)).pems);
      roots.b.push(...(await rootPems(b)).pems);
      Object.assign(port, {
        apiSidecar: await listenPort(),
        apiTcpSidecar: await listenPort(),
        gateway: await listenPort(),
        webApi: await listenPort(),
        webApiTcp: await listenPort(),
      });
      await a.register(meshGateway('gw-a', port.gateway));
      api = await startHttpApp('api');
      await a.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
      await a.register(withSidecar('api', api.port, port.apiSidecar));
      const apiTcp = await startTcpApp('api-tcp');
      await a.register(withSidecar('api-tcp', apiTcp.port, port.apiTcpSidecar));
      await a.putConfig(exportEntry({ api: ['cluster-b'], 'api-tcp': ['cluster-b'] }));
      const upstreams = [
        { DestinationName: 'api', DestinationPeer: 'cluster-a', LocalBindPort: port.webApi },
        { DestinationName: 'api-tcp', DestinationPeer: 'cluster-a', LocalBindPort: port.webApiTcp },
      ];
      await b.register(withSidecar('web', await listenPort(), await listenPort(), upstreams));
      [envoy.gw, envoy.api, envoy.apiTcp, envoy.web] = await Promise.all([
        startProxy(a, 'gw-a', { kind: 'mesh-gateway', datacenter: 'dc-a' }),
        startProxy(a, 'api-sidecar-proxy', { datacenter: 'dc-a' }),
        startProxy(a, 'api-tcp-sidecar-proxy', { datacenter: 'dc-a' }),
        startProxy(b, 'web-sidecar-proxy', { datacenter: 'dc-b' }),
      ]);
    });

    // Each change starts with both long-lived connections open (a change before may have ended
    // them), while B is peered with A.
    beforeEach(async () => {
      if (load && peeredAB) await ensureLongLived();
    });

    afterAll(async () => {
      await Promise.all([load?.stop(), loadC?.stop()]);
      ws?.close();
      tcp?.close();
      await cleanupEnvoys();
      await closeApps();
      await Promise.all([a?.close(), b?.close(), c?.close()]);
      await cleanupProcesses();
      if (rows.length > 0) console.log(table(rows));
    });

    it('baseline: every Envoy is LIVE and SYNCED, and traffic flows with no failure', async () => {
      for (const [node, e] of [
        [a, envoy.gw],
        [a, envoy.api],
        [a, envoy.apiTcp],
        [b, envoy.web],
      ] as const) {
        await waitHealthy(e);
        await waitSynced(node, e.name);
      }
      expect((await eventually(() => httpCall(port.webApi, '/first'), 'web → api')).seen?.app).toBe(
        'api',
      );
      load = new LoadLoop(port.webApi, { keepAliveWorkers: 2, freshWorkers: 2 });
      await ensureLongLived();
      load.phase('baseline');
      const counts = await load.waitForSuccesses(enough);
      expect(counts.failures).toEqual({});
      expect(counts.byApp).toEqual({ api: counts.ok });
    });

    it("the SPIFFE validators Envoy takes from SDS hold: B's CA vouches for B's trust domain only, a stranger's CA for none", async () => {
      const rootsB = await b.api<{
        ActiveRootID: string;
        Roots: { ID: string; RootCert: string }[];
      }>('GET', '/v1/connect/ca/roots');
      const activeB = rootsB.body.Roots.find((r) => r.ID === rootsB.body.ActiveRootID)!;
      const signerB = await loadSigner(
        activeB.ID,
        activeB.RootCert,
        await new RootKeyFiles(b.proc.dataDir).read(activeB.ID),
      );
      const stranger = await createRoot({
        rootUri: `spiffe://${td.b}`,
        name: 'stranger',
        now: Date.now(),
        validityMs: 3600_000,
      });
      const strangerSigner = await loadSigner(stranger.id, stranger.certPem, stranger.keyPem);
      const leaf = (signer: typeof signerB, spiffeId: string) =>
        issueLeaf(signer, { spiffeId, now: Date.now(), ttlMs: 3600_000 });
      const web = await leaf(signerB, `spiffe://${td.b}/ns/default/dc/dc-b/svc/web`);
      const impostor = await leaf(signerB, `spiffe://${td.a}/ns/default/dc/dc-a/svc/web`);
      const forged = await leaf(strangerSigner, `spiffe://${td.b}/ns/default/dc/dc-b/svc/web`);
      // A's api sidecar (its public listener's roots:inbound) and A's gateway chain for B (its
      // roots:inbound:peer:cluster-b), where HTTP from B is terminated.
      const targets = [
        { where: "A's api sidecar", port: port.apiSidecar },
        {
          where: "A's gateway",
          port: port.gateway,
          servername: `api.default.default.cluster-b.external.${td.a}`,
        },
      ];
      for (const t of targets) {
        expect(
          await mtlsRequest(t.port, { ...web, ...t }),
          `${t.where}: B's CA for B's web`,
        ).toHaveProperty('answered');
        expect(
          await mtlsRequest(t.port, { ...impostor, ...t }),
          `${t.where}: B's CA for an identity in A`,
        ).toHaveProperty('refused');
        expect(
          await mtlsRequest(t.port, { ...forged, ...t }),
          `${t.where}: a stranger's CA for B's web`,
        ).toHaveProperty('refused');
      }
    });

    it('1. endpoint move in A: the new instance takes every new request and none fails', async () => {
      const since = Date.now();
      load.phase('move');
      const v2 = await startHttpApp('api-v2');
      await a.register(withSidecar('api', v2.port, port.apiSidecar));
      await eventually(async () => {
        expect((await envoy.api.clusters()).get('local_app')?.map((h) => h.address)).toEqual([
          `127.0.0.1:${v2.port}`,
        ]);
      }, "api's sidecar to send local_app to the new instance");
      // The first answers from the new instance on both kinds of connection end the switch.
      await load.waitForSuccesses(1, { app: 'api-v2' });
      apiName = 'api-v2';
      const during = load.counts('move');
      const after = await afterWindow('move');
      // Isthmus changes only the sidecar's local_app cluster (make-before-break: the old app still
      // runs), so no request may fail, during the switch or after it.
      expect(during.failures, 'failures during the switch').toEqual({});
      expect(after.failures).toEqual({});
      expect(after.byApp, 'after the switch only the new instance answers').toEqual({
        'api-v2': after.ok,
      });
      // Open connections (recorded): the WebSocket upgraded before the move keeps its upstream
      // connection to the old instance (Envoy lets a stream of a replaced cluster finish), and the
      // TCP connection to api-tcp is not involved.
      const row = await record('endpoint move (app port)', during, after, since);
      // Then the old instance stops: nothing routes to it any more, so nothing fails. (A WebSocket
      // opened to the old instance ends with it: that is the app's socket closing, not the mesh.)
      load.phase('move: old app stopped');
      await api.close();
      api = v2;
      const stopped = await load.waitForSuccesses(enough, { app: 'api-v2' });
      expect(stopped.failures).toEqual({});
      rows.push({
        ...row,
        change: 'old instance stopped',
        during: stopped,
        after: stopped,
        webSocket: await fate(ws, since),
        tcp: await fate(tcp, since),
      });
      await expectEverythingAccepted();
    });

    it("2. unexport: B's Envoy drops the upstream and calls are refused at once; re-export restores it", async () => {
      const since = Date.now();
      load.phase('unexport');
      await a.putConfig(exportEntry({ 'api-tcp': ['cluster-b'] }));
      const peeredApi = `api.default.cluster-a.external.${td.a}`;
      await everyDump([envoy.web], "web's sidecar without the api upstream", (_e, dump) => {
        const names = dumpNames(dump);
        return names.clusters.includes(peeredApi) ||
          names.listeners.some((l) => l.startsWith('api?peer=cluster-a:'))
          ? JSON.stringify(names)
          : undefined;
      });
      await everyDump([envoy.gw], "A's gateway without a chain for api", (_e, dump) => {
        const sni = `api.default.default.cluster-b.external.${td.a}`;
        return [...dumpFilterChains(dump).values()]
          .flat()
          .some((ch) => ch.serverNames.includes(sni))
          ? `a chain for ${sni}`
          : undefined;
      });
      const during = load.counts('unexport');
      load.phase('unexported');
      const unexported = await load.waitForFailures(2 * enough);
      // Refused, not hung: each failure is a refusal the client sees at once, never a timeout.
      expect(unexported.ok).toBe(0);
      expect(
        Object.keys(unexported.failures).filter((f) => !refusals.has(f)),
        `failures ${JSON.stringify(unexported.failures)}`,
      ).toEqual([]);
      expect(
        Object.keys(during.failures).filter((f) => !refusals.has(f)),
        `failures ${JSON.stringify(during.failures)}`,
      ).toEqual([]);
      // The other exported service is untouched: its open TCP connection still exchanges. (The
      // WebSocket to api ends, recorded: B's listener for api is removed, and Envoy drains and then
      // closes a removed listener's connections.)
      const tcpFate = await fate(tcp, since);
      expect(tcpFate).toBe('open, still exchanging');
      rows.push({
        change: 'unexport api',
        during,
        after: unexported,
        webSocket: await fate(ws, since),
        tcp: tcpFate,
      });

      const since2 = Date.now();
      load.phase('re-export');
      await a.putConfig(exportEntry({ api: ['cluster-b'], 'api-tcp': ['cluster-b'] }));
      await load.waitForSuccesses(1);
      const reexport = load.counts('re-export');
      const after = await afterWindow('re-export');
      expect(after.failures).toEqual({});
      // The upstream came back as a new cluster: its endpoints must have come with it, not after
      // Envoy's initial fetch timeout.
      await expectEverythingAccepted();
      await ensureLongLived();
      rows.push({
        change: 're-export api',
        during: reexport,
        after,
        webSocket: `a new one opens (${await fate(ws, since2)})`,
        tcp: await fate(tcp, since),
      });
    });

    for (const side of ['a', 'b'] as const) {
      it(`3${side}. CA rotation in ${side.toUpperCase()}: not one request fails, open connections stay open, every Envoy ends on the new root`, async () => {
        const node = side === 'a' ? a : b;
        const before = await rootPems(node);
        // Before: the root to retire is one some TLS context trusts (so the check at the end can
        // fail).
        const trustedBefore = (await Promise.all(all().map((e) => envoyCerts(e.adminUrl)))).flatMap(
          (c) => c.trusted,
        );
        expect(trustedBefore).toEqual(expect.arrayContaining(before.pems.map(serialOf)));
        const since = Date.now();
        load.phase(`rotate ${side}`);
        expect((await node.api('POST', '/v1/connect/ca/rotate')).status).toBe(200);
        const rotated = await waitFor(
          async () => {
            const now = await rootPems(node);
            return now.pems.length === 1 && now.active !== before.active && now;
          },
          {
            timeoutMs: 6 * phaseMs + 30_000,
            intervalMs: 200,
            what: `${side.toUpperCase()}'s rotation to retire the old root`,
          },
        );
        roots[side].push(...rotated.pems);
        const newRoot = rotated.pems[0]!;
        const own = side === 'a' ? a_() : [envoy.web];
        // The rotating cluster's Envoys present leaves from the new root...
        await everyDump(own, 'leaves from the new root', (_e, dump) => {
          const leaves = dumpSecrets(dump).filter((s) => s.leafPem);
          if (leaves.length === 0) return 'no leaf';
          const old = leaves.filter((s) => !signedBy(s.leafPem!, newRoot));
          return old.length > 0 ? `leaf ${old[0]!.name} not from the new root` : undefined;
        });
        // ...and serve them: every certificate their TLS contexts present is one of those leaves.
        for (const e of own) {
          const leaves = dumpSecrets(await e.configDump()).flatMap((x) =>
            x.leafPem ? [serialOf(x.leafPem)] : [],
          );
          await eventually(async () => {
            const { presented } = await envoyCerts(e.adminUrl);
            expect(presented.length, `${e.name} presents a certificate`).toBeGreaterThan(0);
            expect(
              presented.filter((p) => !leaves.includes(p)),
              `${e.name} presents only leaves of the new root`,
            ).toEqual([]);
          }, `${e.name}'s TLS contexts to present the new leaves`);
        }
        // ...and no Envoy anywhere holds the retired root (SDS secret or inlined trust bundle), nor
        // trusts it in a TLS context.
        const retiredSerials = before.pems.filter((p) => !rotated.pems.includes(p)).map(serialOf);
        for (const e of all()) {
          await eventually(async () => {
            expect(
              (await envoyCerts(e.adminUrl)).trusted.filter((t) => retiredSerials.includes(t)),
              `${e.name} trusts the retired root`,
            ).toEqual([]);
          }, `${e.name} to stop trusting the retired root`);
        }
        const retired = before.pems.filter((p) => !rotated.pems.includes(p)).map(pemMark);
        await everyDump(all(), 'no trace of the retired root', (_e, dump) =>
          retired.some((m) => dumpText(dump).includes(m)) ? 'holds the retired root' : undefined,
        );
        // ...while the peer's bundle in the other cluster's Envoys is the new root.
        await everyDump(
          side === 'a' ? [envoy.web] : a_(),
          "the new root in the peer's Envoys",
          (_e, dump) =>
            dumpText(dump).includes(pemMark(newRoot)) ? undefined : 'lacks the new root',
        );
        const during = load.counts(`rotate ${side}`);
        const after = await afterWindow(`rotate ${side}`);
        const row = await record(`CA rotation in ${side.toUpperCase()}`, during, after, since);
        expect(during.failures, 'failed requests during the rotation').toEqual({});
        expect(after.failures).toEqual({});
        expect(row.webSocket, 'the open WebSocket across the rotation').toBe(
          'open, still exchanging',
        );
        expect(row.tcp, 'the open TCP connection across the rotation').toBe(
          'open, still exchanging',
        );
        await expectEverythingAccepted();
      });
    }

    it("4. A's gateway re-registered on a new port: its Envoy and B's endpoints follow, requests resume", async () => {
      const oldPort = port.gateway;
      port.gateway = await listenPort();
      const since = Date.now();
      load.phase('gateway move');
      await a.register(meshGateway('gw-a', port.gateway));
      await everyDump([envoy.gw], 'the gateway listening on its new port only', (_e, dump) => {
        const listeners = dumpNames(dump).listeners;
        return JSON.stringify(listeners) === JSON.stringify([`default:127.0.0.1:${port.gateway}`])
          ? undefined
          : JSON.stringify(listeners);
      });
      await eventually(async () => {
        const clusters = await envoy.web.clusters();
        for (const name of [
          `api.default.cluster-a.external.${td.a}`,
          `api-tcp.default.cluster-a.external.${td.a}`,
        ]) {
          expect(
            clusters.get(name)?.map((h) => h.address),
            name,
          ).toEqual([`127.0.0.1:${port.gateway}`]);
        }
      }, "web's endpoints for A's services to follow the gateway");
      const during = load.counts('gateway move');
      const after = await afterWindow('gateway move');
      expect(after.failures).toEqual({});
      // While the switch is under way a request may meet the old port closed (B does not know the
      // new one yet) or the new one not yet bound: only refusals, never a hang. (Recorded, Envoy's
      // choice: pooled connections to the old port carry requests until the old listener's drain
      // ends, which is why none failed in our runs; the open WebSocket and TCP connection went
      // through the old listener and are closed when its drain ends.)
      expect(
        Object.keys(during.failures).filter((f) => !refusals.has(f)),
        `failures ${JSON.stringify(during.failures)}`,
      ).toEqual([]);
      await record(`A's gateway moved (port ${oldPort} → ${port.gateway})`, during, after, since);
      await expectEverythingAccepted();
    });

    it("5. a new peer C: B's traffic and open connections are untouched, and C's app calls A's api", async () => {
      c = await startMeshProcess({ datacenter: 'dc-c', caRotationPhaseMs: String(phaseMs) });
      td.c = await c.trustDomain();
      roots.c.push(...(await rootPems(c)).pems);
      const since = Date.now();
      load.phase('new peer');
      await peerClusters(a, c, { dialerName: 'cluster-c', acceptorName: 'cluster-a' });
      await a.putConfig(
        exportEntry({ api: ['cluster-b', 'cluster-c'], 'api-tcp': ['cluster-b', 'cluster-c'] }),
      );
      port.mobileApi = await listenPort();
      await c.register(
        withSidecar('mobile', await listenPort(), await listenPort(), [
          { DestinationName: 'api', DestinationPeer: 'cluster-a', LocalBindPort: port.mobileApi },
        ]),
      );
      envoy.mobile = await startProxy(c, 'mobile-sidecar-proxy', { datacenter: 'dc-c' });
      const res = await eventually(
        () => httpCall(port.mobileApi, '/from-c'),
        'mobile (C) → api (A)',
      );
      expect(res.seen?.app).toBe(apiName);
      expect(res.seen?.headers['x-forwarded-client-cert']).toContain(
        `URI=spiffe://${td.c}/ns/default/dc/dc-c/svc/mobile`,
      );
      loadC = new LoadLoop(port.mobileApi, { keepAliveWorkers: 1, freshWorkers: 1 });
      await loadC.waitForSuccesses(enough);
      // A's gateway and sidecars now also serve C: B's traffic must not notice.
      await everyDump([envoy.gw], "A's gateway with chains for C", (_e, dump) =>
        ['api', 'api-tcp'].every((svc) =>
          dumpText(dump).includes(`${svc}.default.default.cluster-c.external.${td.a}`),
        )
          ? undefined
          : 'no chains for C',
      );
      await everyDump([envoy.api, envoy.apiTcp], "A's sidecars trusting C", (_e, dump) =>
        dumpText(dump).includes(td.c) ? undefined : `no ${td.c}`,
      );
      const during = load.counts('new peer');
      const after = await afterWindow('new peer');
      const row = await record(
        'new peer C (A exports api and api-tcp to it)',
        during,
        after,
        since,
      );
      expect(during.failures, "B's failed requests while C was added").toEqual({});
      expect(after.failures).toEqual({});
      expect(row.webSocket, "B's open WebSocket while C was added").toBe('open, still exchanging');
      expect(row.tcp, "B's open TCP connection while C was added").toBe('open, still exchanging');
      await expectEverythingAccepted();
    });

    it('6. deleting the peering on A: no Envoy keeps anything derived from it, calls are refused at once, C is untouched', async () => {
      const since = Date.now();
      load.phase('delete');
      loadC!.phase('B deleted');
      expect((await a.api('DELETE', '/v1/peering/cluster-b')).status).toBe(200);
      peeredAB = false;
      await waitFor(async () => (await a.api('GET', '/v1/peering/cluster-b')).status === 404, {
        timeoutMs: 30_000,
        what: "A's peering cluster-b to be gone",
      });
      await waitFor(
        async () =>
          (await b.api<{ State: string }>('GET', '/v1/peering/cluster-a')).body.State ===
          'TERMINATED',
        { timeoutMs: 30_000, what: "B's peering cluster-a to be TERMINATED" },
      );
      // B's sidecar: nothing of A, by name or content (A's trust domain, A's roots, the peer's
      // name).
      const marksA = roots.a.map(pemMark);
      await everyDump([envoy.web], "web's sidecar with nothing of A", (_e, dump) =>
        traces(dumpText(dump), [td.a, 'cluster-a', ...marksA]),
      );
      expect(dumpNames(await envoy.web.configDump())).toMatchObject({
        clusters: ['local_app'],
        secrets: expect.not.arrayContaining([expect.stringContaining('peer')]),
      });
      // A's Envoys: nothing of B (its trust domain, its roots, B's SNIs); A's gateway keeps C's
      // chain.
      const marksB = roots.b.map(pemMark);
      await everyDump([...a_(), envoy.mobile!], 'A and C with nothing of B', (_e, dump) =>
        traces(dumpText(dump), [td.b, 'cluster-b', ...marksB]),
      );
      const chains = [...dumpFilterChains(await envoy.gw.configDump()).values()].flat();
      expect(chains.flatMap((ch) => ch.serverNames)).toContain(
        `api.default.default.cluster-c.external.${td.a}`,
      );
      // B's calls are refused at once.
      const during = load.counts('delete');
      load.phase('deleted');
      const deleted = await load.waitForFailures(2 * enough);
      expect(deleted.ok).toBe(0);
      expect(
        Object.keys(deleted.failures).filter((f) => !refusals.has(f)),
        `failures ${JSON.stringify(deleted.failures)}`,
      ).toEqual([]);
      await expect(httpCall(port.webApi, '/after-delete')).rejects.toMatchObject({
        code: 'ECONNREFUSED',
      });
      // Open connections end with the listeners they came through (recorded).
      rows.push({
        change: 'peering A–B deleted on A',
        during,
        after: deleted,
        webSocket: await fate(ws, since),
        tcp: await fate(tcp, since),
      });
      // C's traffic to A did not notice.
      const cCounts = await loadC!.waitForSuccesses(enough);
      expect(cCounts.failures, "C's failures while A–B was deleted").toEqual({});
      await expectEverythingAccepted();
    });

    it('6b. deleting the peering on its dialer C: no Envoy keeps anything derived from it', async () => {
      loadC!.phase('C deleted');
      expect((await c!.api('DELETE', '/v1/peering/cluster-a')).status).toBe(200);
      await waitFor(async () => (await c!.api('GET', '/v1/peering/cluster-a')).status === 404, {
        timeoutMs: 30_000,
        what: "C's peering cluster-a to be gone",
      });
      const marksA = roots.a.map(pemMark);
      await everyDump([envoy.mobile!], "mobile's sidecar with nothing of A", (_e, dump) =>
        traces(dumpText(dump), [td.a, 'cluster-a', ...marksA]),
      );
      const marksC = roots.c.map(pemMark);
      await everyDump(a_(), 'A with nothing of C', (_e, dump) =>
        traces(dumpText(dump), [td.c, 'cluster-c', ...marksC]),
      );
      // With no peer left, A's gateway routes nothing: its listener has no chain.
      expect(
        [...dumpFilterChains(await envoy.gw.configDump()).values()]
          .flat()
          .flatMap((ch) => ch.serverNames),
      ).toEqual([]);
      const gone = await loadC!.waitForFailures(2 * enough);
      expect(
        Object.keys(gone.failures).filter((f) => !refusals.has(f)),
        `failures ${JSON.stringify(gone.failures)}`,
      ).toEqual([]);
      await expectEverythingAccepted();
    });
  },
);

/** The first of `needles` found in `text`, as a problem; undefined when none is there. */
function traces(text: string, needles: readonly string[]): string | undefined {
  const found = needles.find((n) => text.includes(n));
  return found === undefined ? undefined : `still holds ${JSON.stringify(found)}`;
}

function summary(c: PhaseCounts): string {
  const failures = Object.entries(c.failures)
    .map(([k, v]) => `${v}× ${k}`)
    .join(', ');
  return `${c.ok} ok, ${c.failed} failed${failures ? ` (${failures})` : ''}`;
}

function table(rows: readonly Row[]): string {
  const lines = [
    '| change | requests while converging | requests after | open WebSocket (web → api) | open TCP (web → api-tcp) |',
    '|---|---|---|---|---|',
  ];
  for (const r of rows)
    lines.push(
      `| ${r.change} | ${summary(r.during)} | ${summary(r.after)} | ${r.webSocket} | ${r.tcp} |`,
    );
  return lines.join('\n');
}
