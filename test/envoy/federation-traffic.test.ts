/**
 * Three WAN-federated datacenters (docs/architecture.md §6c), each a real `isthmus server` process
 * with a real Envoy mesh gateway that exposes its servers (`Meta consul-wan-federation=1`): dc1 is
 * the primary; dc2 and dc3 join it on their first start through dc1's gateway (`--primary-gateways`,
 * nothing else of dc1 configured), then keep their federation link through their own gateway. dc1
 * runs `api` (HTTP) and `db` (TCP) behind sidecars; dc3 runs `web`, `reports` and `intruder`, whose
 * upstreams name `Datacenter: dc1`: web's in gateway mode `local` (dc3's gateway, then dc1's),
 * reports' in mode `remote` (dc1's gateway only), intruder's one of each. The intentions are written once, on the primary, and replicated.
 *
 * Each server binds its federation port on its own loopback address (127.0.<n>.1), and no server
 * is ever given another datacenter's server address: a case shows every connection to a server's
 * federation port is one its own gateway opened.
 *
 * Two cases stop servers (their Envoys and apps stay up) and start them again on the same data dir
 * and ports: first the secondary dc2, then the primary dc1; each leaves every server up again. They
 * come before the root rotation: an Envoy's bootstrap holds the roots it was written with, so one
 * written before a rotation cannot verify a server that restarts after it (§2 "The xDS port").
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaRootsJson } from '../../src/api/ca-routes.js';
import type { WanServerJson } from '../../src/api/operator-routes.js';
import { cleanupProcesses, runCli } from '../helpers/process.js';
import { federationSecretFile } from '../helpers/federation-server.js';
import { waitFor } from '../helpers/wait.js';
import { type App, closeApps, httpCall, listenPort, startApp, tcpCall } from './apps.js';
import { LoadLoop } from './traffic.js';
import {
  chainsTo,
  type FederatedDatacenterOptions,
  leafChains,
  restartFederatedServer,
  startFederatedDatacenter,
} from './federation.js';
import {
  cleanupEnvoys,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
} from './harness.js';
import {
  eventually,
  type MeshProcess,
  type PlacedProxy,
  startPlacedProxy,
  waitAllSynced,
  waitSynced,
  withSidecar,
} from './mesh.js';

const datacenters = ['dc1', 'dc2', 'dc3'] as const;
type Dc = (typeof datacenters)[number];
/** Each datacenter's servers bind their federation port here, and nowhere else of another's. */
const loopback = { dc1: '127.0.1.1', dc2: '127.0.2.1', dc3: '127.0.3.1' } as const;
const targets = ['api', 'db'] as const;
type Target = (typeof targets)[number];
type Mode = 'local' | 'remote';
/** dc3's callers and the gateway mode of each one's upstream to each dc1 service. */
const callers = {
  web: { api: 'local', db: 'local' },
  reports: { api: 'remote', db: 'remote' },
  intruder: { api: 'local', db: 'remote' },
} as const satisfies Record<string, Record<Target, Mode>>;
type Caller = keyof typeof callers;
/** Each phase of a CA root rotation in the primary (trust both → new leaves → retire the old). */
const rotationPhaseMs = 5_000;

type FederationStates = {
  States: { Datacenter: string; MeshGateways: { Address: string; Port: number }[] }[];
  PrimaryLink?: { Connected: boolean; Via: string; LastError: string };
};

describe.skipIf(skipWithoutEnvoy())(
  'three WAN-federated datacenters with real Envoy gateways and sidecars',
  () => {
    const servers = {} as Record<Dc, MeshProcess>;
    const gateways = {} as Record<Dc, EnvoyProcess>;
    const gwPorts = {} as Record<Dc, { lan: number; wan: number }>;
    const fedPorts = {} as Record<Dc, number>;
    const placed: PlacedProxy[] = [];
    const apps = new Map<Target, App>();
    /** `<caller> <target>` → the caller's upstream's local port. */
    const ports = new Map<string, number>();
    const port = (caller: Caller, target: Target) => ports.get(`${caller} ${target}`)!;
    let td = '';
    /** Connections dc1's gateway had passed to dc1's servers before dc2 started, and after. */
    const joinCounts = { before: 0, after: 0 };

    showEnvoyLogsOnFailure();

    /** Connections a gateway passed to its own datacenter's servers (the server SNI chains). */
    const serverConnections = async (envoy: EnvoyProcess) =>
      (await envoy.stats('mesh_gateway_local_server'))[
        'tcp.mesh_gateway_local_server.downstream_cx_total'
      ] ?? 0;

    let secretFile = '';

    /** A datacenter's server options: its own loopback address, dc1's gateway for a secondary. */
    const options = (dc: Dc): FederatedDatacenterOptions => ({
      primaryDatacenter: 'dc1',
      loopback: loopback[dc],
      secretFile,
      nodeName: `server-${datacenters.indexOf(dc) + 1}`,
      ...(dc === 'dc1'
        ? { flags: { caRotationPhaseMs: String(rotationPhaseMs) } }
        : { primaryGatewayWanPort: gwPorts.dc1.wan }),
    });

    /** Starts a datacenter's server and its exposing gateway (registered, Envoy LIVE). */
    async function startDatacenter(dc: Dc): Promise<void> {
      const started = await startFederatedDatacenter(dc, options(dc));
      servers[dc] = started.server;
      fedPorts[dc] = started.federationPort;
      gwPorts[dc] = started.gatewayPorts;
      gateways[dc] = started.gateway.envoy;
      placed.push(started.gateway);
    }

    /** Stops a datacenter's server process (SIGTERM); its Envoys and apps stay up. */
    async function stopServer(dc: Dc): Promise<void> {
      await servers[dc].close();
    }

    /**
     * Starts a stopped server again on its data dir and the same ports, so its Envoys (which keep
     * their bootstrap) and its gateway's routes find it where they did.
     */
    async function restartServer(dc: Dc): Promise<void> {
      servers[dc] = await restartFederatedServer(dc, servers[dc], options(dc));
    }

    /** `GET /v1/operator/servers?wan` on `dc`'s server: each datacenter's server states. */
    const wanStates = async (dc: Dc) => {
      const res = await servers[dc].api<WanServerJson[]>('GET', '/v1/operator/servers?wan=1');
      expect(res.status).toBe(200);
      const byDc: Record<string, string[]> = {};
      for (const s of res.body) (byDc[s.Datacenter] ??= []).push(`${s.Name} ${s.Status}`);
      return byDc;
    };

    /** Waits until `members --wan` on `dc` says what `want` says of every datacenter. */
    const waitWan = (dc: Dc, want: Record<Dc, 'alive' | 'failed'>) =>
      waitFor(
        async () => {
          const got = await wanStates(dc);
          return datacenters.every(
            (d, i) => JSON.stringify(got[d]) === JSON.stringify([`server-${i + 1} ${want[d]}`]),
          );
        },
        {
          timeoutMs: 60_000,
          intervalMs: 200,
          what: `members --wan on ${dc}: ${JSON.stringify(want)}`,
        },
      );

    /** Waits until a secondary's link to the primary is up (through its own gateway). */
    const waitLinked = (dc: 'dc2' | 'dc3') =>
      waitFor(
        async () =>
          (await servers[dc].api<FederationStates>('GET', '/v1/internal/federation-states')).body
            .PrimaryLink?.Connected === true,
        { timeoutMs: 90_000, intervalMs: 200, what: `${dc}'s link to the primary` },
      );

    const readConfig = async (dc: Dc, kind: string, name: string) =>
      servers[dc].api<Record<string, unknown>>('GET', `/v1/config/${kind}/${name}`);

    /** Waits until `dc` holds the service-defaults `name` (replicated from the primary). */
    const waitReplicated = (dc: Dc, name: string) =>
      waitFor(async () => (await readConfig(dc, 'service-defaults', name)).status === 200, {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: `service-defaults ${name} on ${dc}`,
      });

    beforeAll(async () => {
      secretFile = federationSecretFile();
      await startDatacenter('dc1');
      td = await servers.dc1.trustDomain();
      // Global configuration, written once on the primary: api speaks HTTP; web and reports may
      // call api and db, intruder (a dc3 service) may not.
      await servers.dc1.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
      for (const target of targets)
        await servers.dc1.putConfig({
          Kind: 'service-intentions',
          Name: target,
          Sources: [
            { Name: 'intruder', Action: 'deny' },
            { Name: 'web', Action: 'allow' },
            { Name: 'reports', Action: 'allow' },
          ],
        });
      apps.set('api', await startApp('http', 'api'));
      apps.set('db', await startApp('tcp', 'db'));
      for (const target of targets)
        await servers.dc1.register(withSidecar(target, apps.get(target)!.port, await listenPort()));

      joinCounts.before = await serverConnections(gateways.dc1);
      await startDatacenter('dc2');
      joinCounts.after = await serverConnections(gateways.dc1);
      await startDatacenter('dc3');

      for (const [caller, modeOf] of Object.entries(callers)) {
        const upstreams = [];
        for (const target of targets) {
          const p = await listenPort();
          ports.set(`${caller} ${target}`, p);
          upstreams.push({
            DestinationName: target,
            Datacenter: 'dc1',
            LocalBindPort: p,
            MeshGateway: { Mode: modeOf[target] },
          });
        }
        const app = await startApp('tcp', caller);
        await servers.dc3.register(withSidecar(caller, app.port, await listenPort(), upstreams));
      }
      placed.push(
        ...(await Promise.all([
          ...targets.map((t) =>
            startPlacedProxy(servers.dc1, `${t}-sidecar-proxy`, { datacenter: 'dc1' }),
          ),
          ...Object.keys(callers).map((c) =>
            startPlacedProxy(servers.dc3, `${c}-sidecar-proxy`, { datacenter: 'dc3' }),
          ),
        ])),
      );
    }, 300_000);

    afterAll(async () => {
      await cleanupEnvoys();
      await closeApps();
      await Promise.all(datacenters.map((dc) => servers[dc]?.close()));
      await cleanupProcesses();
    });

    it('every Envoy (three gateways, five sidecars) is LIVE and SYNCED', async () => {
      expect(placed).toHaveLength(8);
      await waitAllSynced(placed);
    });

    it("a new secondary joins through the primary's gateway: dc2's first contact was a connection dc1's gateway passed to dc1's server", () => {
      expect(joinCounts.after).toBeGreaterThan(joinCounts.before);
    });

    it('one trust domain: GET /v1/connect/ca/roots is the same in all three datacenters', async () => {
      const roots = await Promise.all(
        datacenters.map(
          async (dc) => (await servers[dc].api<CaRootsJson>('GET', '/v1/connect/ca/roots')).body,
        ),
      );
      const shape = (r: CaRootsJson) => ({
        TrustDomain: r.TrustDomain,
        ActiveRootID: r.ActiveRootID,
        Roots: r.Roots.map((x) => ({ ID: x.ID, RootCert: x.RootCert })),
      });
      expect(roots[0]!.TrustDomain).toBe(td);
      expect(shape(roots[1]!)).toEqual(shape(roots[0]!));
      expect(shape(roots[2]!)).toEqual(shape(roots[0]!));
    });

    it('every datacenter knows all three, with their gateways; each secondary links through its own gateway', async () => {
      for (const dc of datacenters)
        await waitFor(
          async () =>
            JSON.stringify((await servers[dc].api('GET', '/v1/catalog/datacenters')).body) ===
            '["dc1","dc2","dc3"]',
          { timeoutMs: 30_000, intervalMs: 100, what: `${dc} to list dc1, dc2 and dc3` },
        );
      for (const dc of ['dc2', 'dc3'] as const) {
        const link = await waitFor(
          async () => {
            const s = await servers[dc].api<FederationStates>(
              'GET',
              '/v1/internal/federation-states',
            );
            const l = s.body.PrimaryLink;
            return l?.Connected && l.Via === `127.0.0.1:${gwPorts[dc].lan}` && s.body;
          },
          { timeoutMs: 60_000, intervalMs: 200, what: `${dc}'s link through its own gateway` },
        );
        const dc1 = link.States.find((s) => s.Datacenter === 'dc1');
        expect(dc1?.MeshGateways).toEqual([{ Address: '127.0.0.1', Port: gwPorts.dc1.wan }]);
      }
    });

    it('members --wan on dc3 lists every server of dc1, dc2 and dc3 alive, at the federation address its own gateways dial', async () => {
      await waitWan('dc3', { dc1: 'alive', dc2: 'alive', dc3: 'alive' });
      const out = await runCli(['members', '--wan', '--http-addr', servers.dc3.httpAddress]);
      expect(out.code, out.stderr).toBe(0);
      const [header, ...rows] = out.stdout.split('\n');
      expect(header).toMatch(/^NODE\s+ADDRESS\s+STATUS\s+DATACENTER\s+ROLE\s+SINCE$/);
      expect(rows).toHaveLength(3);
      for (const [i, dc] of datacenters.entries()) {
        const address = `${loopback[dc]}:${fedPorts[dc]}`.replaceAll('.', '\\.');
        const self = dc === 'dc3' ? ' \\(this\\)' : '';
        const role = dc === 'dc1' ? 'leader, primary' : 'leader';
        expect(rows[i]).toMatch(
          new RegExp(
            `^server-${i + 1}${self}\\s+${address}\\s+alive\\s+${dc}\\s+${role}\\s+\\d{4}-`,
          ),
        );
      }
    });

    it('config entries written on the primary are replicated to both secondaries', async () => {
      const read = async (dc: Dc, kind: string, name: string) =>
        (await servers[dc].api<Record<string, unknown>>('GET', `/v1/config/${kind}/${name}`)).body;
      const sources = (e: Record<string, unknown>) => e.Sources;
      const want = sources(await read('dc1', 'service-intentions', 'api'));
      for (const dc of ['dc2', 'dc3'] as const)
        await waitFor(
          async () =>
            JSON.stringify(sources(await read(dc, 'service-intentions', 'api'))) ===
            JSON.stringify(want),
          { timeoutMs: 30_000, intervalMs: 100, what: `api's intentions on ${dc}` },
        );
      // A later write reaches both too.
      await servers.dc1.putConfig({ Kind: 'service-defaults', Name: 'later', Protocol: 'http' });
      for (const dc of ['dc2', 'dc3'] as const)
        await waitFor(
          async () => (await read(dc, 'service-defaults', 'later')).Protocol === 'http',
          { timeoutMs: 30_000, intervalMs: 100, what: `the later service-defaults on ${dc}` },
        );
      // A write on a secondary is forwarded to the primary through the gateways, and from there
      // replicated to the other secondary.
      const forwarded = await servers.dc3.api('PUT', '/v1/config', {
        Kind: 'service-defaults',
        Name: 'x',
        Protocol: 'http',
      });
      expect(forwarded.status).toBe(200);
      expect((await read('dc1', 'service-defaults', 'x')).Protocol).toBe('http');
      await waitFor(async () => (await read('dc2', 'service-defaults', 'x')).Protocol === 'http', {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: 'the entry written on dc3 to reach dc2 through dc1',
      });
    });

    for (const [caller, mode] of [
      ['web', 'local'],
      ['reports', 'remote'],
    ] as const) {
      describe(`dc3's ${caller} → dc1 (gateway mode ${mode})`, () => {
        it(`HTTP to api: mTLS in the one trust domain, the app sees ${caller} of dc3 as the caller`, async () => {
          const res = await eventually(
            () => httpCall(port(caller, 'api'), `/federated-${mode}`),
            `HTTP ${caller} → api (${mode})`,
            60_000,
          );
          expect(res.status).toBe(200);
          expect(res.seen).toMatchObject({ app: 'api', path: `/federated-${mode}` });
          const xfcc = res.seen!.headers['x-forwarded-client-cert']!;
          expect(xfcc).toContain(`URI=spiffe://${td}/ns/default/dc/dc3/svc/${caller}`);
        });

        it('TCP to db', async () => {
          expect(
            await eventually(
              () => tcpCall(port(caller, 'db')),
              `TCP ${caller} → db (${mode})`,
              60_000,
            ),
          ).toEqual({ greeting: 'db', echo: 'ping' });
        });
      });
    }

    it("mode local goes to dc3's gateway and on through dc1's; mode remote straight to dc1's", async () => {
      // Where each sidecar sends dc1's db: web to dc3's gateway (LAN), reports to dc1's (WAN).
      const dbCluster = `db.default.dc1.internal.${td}`;
      const hosts = async (caller: Caller) =>
        (await placedEnvoy(`${caller}-sidecar-proxy`).clusters())
          .get(dbCluster)
          ?.map((h) => h.address);
      expect(await hosts('web')).toEqual([`127.0.0.1:${gwPorts.dc3.lan}`]);
      expect(await hosts('reports')).toEqual([`127.0.0.1:${gwPorts.dc1.wan}`]);
      // And the connections are counted there (TCP: one new connection per call).
      const remoteCluster = `cluster.dc1.internal.${td}.upstream_cx_total`;
      const viaDc3 = async () => (await gateways.dc3.stats(remoteCluster))[remoteCluster] ?? 0;
      const atDc1Wan = () => listenerConnections(gateways.dc1, gwPorts.dc1.wan);
      const [dc3Before, dc1Before] = [await viaDc3(), await atDc1Wan()];
      for (let i = 0; i < 2; i++) await tcpCall(port('web', 'db'));
      expect(await viaDc3()).toBeGreaterThanOrEqual(dc3Before + 2);
      expect(await atDc1Wan()).toBeGreaterThanOrEqual(dc1Before + 2);
      const dc1Middle = await atDc1Wan();
      for (let i = 0; i < 2; i++) await tcpCall(port('reports', 'db'));
      expect(await atDc1Wan()).toBeGreaterThanOrEqual(dc1Middle + 2);
    });

    it("an intention written on the primary refuses dc3's intruder at L4 (db) and L7 (api), its api in mode local, db in mode remote; no app sees it", async () => {
      const before = new Map([...apps].map(([t, app]) => [t, app.seen.length]));
      expect((await httpCall(port('intruder', 'api'), '/nope')).status).toBe(403);
      await expect(tcpCall(port('intruder', 'db'))).rejects.toThrow();
      for (const [t, app] of apps) expect(app.seen.length, `${t} saw intruder`).toBe(before.get(t));
      expect((await httpCall(port('web', 'api'))).status).toBe(200);
    });

    it("dc3's web presents a leaf that chains through dc3's intermediate to the primary's root", async () => {
      const chains = leafChains(await placedEnvoy('web-sidecar-proxy').configDump());
      expect(chains).toHaveLength(1);
      const [leaf, intermediate] = chains[0]!;
      const roots = (await servers.dc1.api<CaRootsJson>('GET', '/v1/connect/ca/roots')).body;
      const root = new X509Certificate(roots.Roots[0]!.RootCert);
      expect(leaf!.subjectAltName).toContain(`spiffe://${td}/ns/default/dc/dc3/svc/web`);
      expect(intermediate?.ca).toBe(true);
      expect(leaf!.verify(intermediate!.publicKey)).toBe(true);
      expect(intermediate!.verify(root.publicKey)).toBe(true);
      expect(leaf!.verify(root.publicKey)).toBe(false);
    });

    it("no server connects to another datacenter's server: every connection to a federation port comes from that datacenter's own gateway", async () => {
      // The links stay open: each secondary's stream to dc1 is one live connection now.
      const sockets = established();
      for (const dc of datacenters) {
        const to = sockets.filter((s) => s.peer === `${loopback[dc]}:${fedPorts[dc]}`);
        for (const s of to)
          expect(s.pid, `${s.local} → ${s.peer} owned by ${s.process}`).toBe(
            gateways[dc].child.pid,
          );
        if (dc === 'dc1') expect(to.length).toBeGreaterThanOrEqual(2);
      }
      // And no server process holds a connection to a port of another datacenter's server.
      for (const dc of datacenters) {
        const pid = servers[dc].proc.child.pid;
        const others = datacenters
          .filter((o) => o !== dc)
          .flatMap((o) => [
            `${loopback[o]}:${fedPorts[o]}`,
            `127.0.0.1:${servers[o].proc.httpPort}`,
            `127.0.0.1:${servers[o].proc.xdsPort}`,
            `127.0.0.1:${servers[o].proc.peeringPort}`,
          ]);
        const direct = sockets.filter((s) => s.pid === pid && others.includes(s.peer));
        expect(direct, `${dc}'s server connected directly`).toEqual([]);
      }
      // Counted at the gateways: dc1's passed the secondaries' links to dc1's server.
      expect(await serverConnections(gateways.dc1)).toBeGreaterThanOrEqual(2);
    });

    it("a secondary down stops no one: with dc2's server stopped, dc1's writes reach dc3, dc3 → dc1 flows, dc1 lists dc2 failed; restarted, dc2 catches up", async () => {
      await stopServer('dc2');
      await waitWan('dc1', { dc1: 'alive', dc2: 'failed', dc3: 'alive' });
      await waitWan('dc3', { dc1: 'alive', dc2: 'failed', dc3: 'alive' });
      await servers.dc1.putConfig({ Kind: 'service-defaults', Name: 'while-dc2-down' });
      await waitReplicated('dc3', 'while-dc2-down');
      expect((await httpCall(port('web', 'api'), '/while-dc2-down')).status).toBe(200);
      expect(await tcpCall(port('reports', 'db'))).toEqual({ greeting: 'db', echo: 'ping' });

      await restartServer('dc2');
      await waitLinked('dc2');
      await waitReplicated('dc2', 'while-dc2-down');
      await waitWan('dc1', { dc1: 'alive', dc2: 'alive', dc3: 'alive' });
      await waitSynced(servers.dc2, 'gw-dc2');
    });

    it("the primary down: dc3 keeps serving its last replicated state, no request from dc3 to dc1 fails, a new dc3 sidecar and a restarted dc3 server get whole config, a global write names dc1; after dc1 returns a write on it reaches dc3's Envoys", async () => {
      const dc3Proxies = placed.filter((p) => p.node === servers.dc3);
      const load = new LoadLoop(port('web', 'api'), { keepAliveWorkers: 1, freshWorkers: 1 });
      try {
        await load.waitForSuccesses(3);
        load.phase('primary down');
        await stopServer('dc1');
        await waitFor(
          async () =>
            (await servers.dc3.api<FederationStates>('GET', '/v1/internal/federation-states')).body
              .PrimaryLink?.Connected === false,
          { timeoutMs: 60_000, intervalMs: 200, what: 'dc3 to see its link to dc1 down' },
        );
        await waitWan('dc3', { dc1: 'failed', dc2: 'failed', dc3: 'alive' });
        // dc3 still holds what dc1 replicated, and its Envoys stay in sync with it.
        expect((await readConfig('dc3', 'service-intentions', 'api')).status).toBe(200);
        await waitAllSynced(dc3Proxies);

        // A sidecar that starts now is built from the replicated state alone: trust domain, dc1's
        // gateways (federation states) and the intentions that let web call api.
        const upstreamPort = await listenPort();
        const app = await startApp('tcp', 'web');
        await servers.dc3.register({
          ...withSidecar('web', app.port, await listenPort(), [
            {
              DestinationName: 'api',
              Datacenter: 'dc1',
              LocalBindPort: upstreamPort,
              MeshGateway: { Mode: 'remote' },
            },
          ]),
          ID: 'web-2',
        });
        const late = await startPlacedProxy(servers.dc3, 'web-2-sidecar-proxy', {
          datacenter: 'dc3',
        });
        placed.push(late);
        const res = await eventually(
          () => httpCall(upstreamPort, '/late'),
          "HTTP from the new dc3 sidecar to dc1's api",
          60_000,
        );
        expect(res.status).toBe(200);
        expect(res.seen!.headers['x-forwarded-client-cert']).toContain(
          `URI=spiffe://${td}/ns/default/dc/dc3/svc/web`,
        );

        // dc3's server restarts from its store alone (no join, no primary) and its Envoys, the
        // new one too, reconnect and are SYNCED with the same config.
        await stopServer('dc3');
        await restartServer('dc3');
        await waitAllSynced([...dc3Proxies, late]);
        expect((await httpCall(upstreamPort, '/after-dc3-restart')).status).toBe(200);

        // A global write on a secondary cannot reach the primary: refused, naming it.
        const refused = await servers.dc3.api('PUT', '/v1/config', {
          Kind: 'service-defaults',
          Name: 'while-dc1-down',
        });
        expect(refused.status).toBeGreaterThanOrEqual(300);
        expect(JSON.stringify(refused.body)).toContain('dc1');

        await load.waitForSuccesses(3);
        load.phase('primary back');
        await restartServer('dc1');
        await Promise.all([waitLinked('dc2'), waitLinked('dc3')]);
        await waitWan('dc3', { dc1: 'alive', dc2: 'alive', dc3: 'alive' });
        await waitWan('dc1', { dc1: 'alive', dc2: 'alive', dc3: 'alive' });
        await load.waitForSuccesses(3);
      } finally {
        await load.stop();
      }
      expect(load.counts('primary down').failures, 'failed requests with dc1 down').toEqual({});
      expect(load.counts('primary back').failures, 'failed requests as dc1 returned').toEqual({});

      // A write on the returned primary reaches dc3 and dc3's Envoys: an intention for web.
      const webRules = async () =>
        JSON.stringify(await placedEnvoy('web-sidecar-proxy').configDump()).includes(
          '/svc/after-return',
        );
      expect(await webRules()).toBe(false);
      await servers.dc1.putConfig({
        Kind: 'service-intentions',
        Name: 'web',
        Sources: [{ Name: 'after-return', Action: 'deny' }],
      });
      await waitFor(webRules, {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: "dc1's new intention in dc3's web sidecar",
      });
      await waitAllSynced(placed);
    });

    it("a root rotation in the primary re-signs both secondaries' intermediates and reaches every Envoy; not one request from dc3 to dc1 fails meanwhile", async () => {
      const rootsOf = async (dc: Dc) =>
        (await servers[dc].api<CaRootsJson>('GET', '/v1/connect/ca/roots')).body;
      const before = await rootsOf('dc1');
      const load = new LoadLoop(port('web', 'api'), { keepAliveWorkers: 1, freshWorkers: 1 });
      try {
        await load.waitForSuccesses(3);
        load.phase('rotation');
        expect((await servers.dc1.api('POST', '/v1/connect/ca/rotate')).status).toBe(200);
        const after = await waitFor(
          async () => {
            const r = await rootsOf('dc1');
            return r.Roots.length === 1 && r.ActiveRootID !== before.ActiveRootID && r;
          },
          {
            timeoutMs: 6 * rotationPhaseMs + 30_000,
            intervalMs: 200,
            what: "the primary's rotation to retire the old root",
          },
        );
        for (const dc of ['dc2', 'dc3'] as const) {
          await waitFor(async () => (await rootsOf(dc)).ActiveRootID === after.ActiveRootID, {
            timeoutMs: 30_000,
            intervalMs: 200,
            what: `${dc} to adopt the new root`,
          });
          expect(
            servers[dc].proc.stdoutLines.some((l) =>
              l.includes('new intermediate CA from the primary'),
            ),
            `${dc} got a new intermediate`,
          ).toBe(true);
        }
        const newRoot = new X509Certificate(after.Roots[0]!.RootCert);
        for (const { envoy } of placed) {
          await eventually(async () => {
            const chains = leafChains(await envoy.configDump());
            if (envoy.name.endsWith('-sidecar-proxy')) expect(chains.length).toBeGreaterThan(0);
            for (const chain of chains)
              expect(chainsTo(chain, newRoot), `${envoy.name}'s leaf under the new root`).toBe(
                true,
              );
          }, `${envoy.name} to hold a leaf under the new root`);
        }
        await load.waitForSuccesses(3);
      } finally {
        await load.stop();
      }
      expect(load.counts('rotation').failures, 'failed requests during the rotation').toEqual({});
    });

    describe('?dc= reads forwarded through the gateways', () => {
      type Entry = { Service: { Service: string; Address: string; Port: number } };
      const instances = (entries: Entry[]) =>
        entries.map((e) => `${e.Service.Service} ${e.Service.Address}:${e.Service.Port}`).sort();

      it("?dc=dc1 on dc3 answers dc1's instances, and ?dc=dc3 on dc1 dc3's, each passed by the target's gateway", async () => {
        const viaDc1 = await serverConnections(gateways.dc1);
        const own = await servers.dc1.api<Entry[]>('GET', '/v1/health/service/api');
        const remote = await servers.dc3.api<Entry[]>('GET', '/v1/health/service/api?dc=dc1');
        expect(remote.status).toBe(200);
        expect(instances(remote.body)).toEqual(instances(own.body));
        expect(instances(remote.body)).toHaveLength(1);
        expect(await serverConnections(gateways.dc1)).toBeGreaterThan(viaDc1);

        const viaDc3 = await serverConnections(gateways.dc3);
        const web = await servers.dc1.api<Entry[]>('GET', '/v1/health/service/web?dc=dc3');
        expect(instances(web.body)).toEqual(
          instances((await servers.dc3.api<Entry[]>('GET', '/v1/health/service/web')).body),
        );
        expect(await serverConnections(gateways.dc3)).toBeGreaterThan(viaDc3);

        const unknown = await servers.dc3.api<{ field: string }>(
          'GET',
          '/v1/catalog/services?dc=dc9',
        );
        expect(unknown).toMatchObject({ status: 400, body: { field: 'dc' } });
      });
    });

    function placedEnvoy(name: string): EnvoyProcess {
      return placed.find((p) => p.envoy.name === name)!.envoy;
    }
  },
);

/** Connections a gateway accepted on its listener at 127.0.0.1:`port`. */
async function listenerConnections(envoy: EnvoyProcess, port: number): Promise<number> {
  const key = `listener.127.0.0.1_${port}.downstream_cx_total`;
  return (await envoy.stats(key))[key] ?? 0;
}

interface Socket {
  readonly local: string;
  readonly peer: string;
  readonly pid: number | undefined;
  readonly process: string;
}

/**
 * Every established TCP connection on this machine, with the process that owns each end. A shared
 * machine may hold tens of thousands (another suite's proxies): room for far more than the 1 MiB
 * `execFileSync` keeps by default.
 */
function established(): Socket[] {
  const out = execFileSync('ss', ['-tnpH', 'state', 'established'], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const cols = line.trim().split(/\s+/);
      const process = cols.slice(4).join(' ');
      const pid = /pid=(\d+)/.exec(process)?.[1];
      return { local: cols[2]!, peer: cols[3]!, pid: pid ? Number(pid) : undefined, process };
    });
}
