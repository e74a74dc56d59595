/**
 * WAN federation and cluster peering in one topology (issue 20 "Together with peering",
 * docs/architecture.md §6c "Federation and peering together"), every proxy a real Envoy:
 *
 * - dc1 (primary) and dc2 (secondary) are federated through their exposing gateways (separate LAN
 *   and WAN listeners); dc1 runs `api` (HTTP);
 * - `ext`, an outside cluster with its own CA and trust domain, peers through mesh gateways (`mesh`
 *   entry `Peering.PeerThroughMeshGateways`) with both datacenters; each accepts and names it
 *   `ext`, as the one global `exported-services` entry names its consumer. dc2's peering server
 *   presents a leaf chained through dc2's intermediate to dc1's root;
 * - dc2 runs `orders` (HTTP) and `stock` (TCP), and dc1 its own `orders`: the entry exports both
 *   to ext, so ext imports `orders` from two peers under one SNI (one trust domain, one name for
 *   ext). dc2's `web` calls dc1's `api` (federation, gateway mode local: dc2's gateway, then
 *   dc1's) and ext's `ledger` (peering, mode local); ext's `client` and `intruder` call both
 *   `orders` and dc2's `stock` (mode local).
 *
 * Every global entry (mesh, intentions, exported-services) is written once, on the primary, and
 * applies in dc2 through replication; each peering is its datacenter's own.
 */
import { X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaRootsJson } from '../../src/api/ca-routes.js';
import { peerClusters } from '../helpers/peered-mesh.js';
import { cleanupProcesses } from '../helpers/process.js';
import { federationSecretFile } from '../helpers/federation-server.js';
import { waitFor } from '../helpers/wait.js';
import { type App, closeApps, httpCall, listenPort, startApp, tcpCall } from './apps.js';
import {
  chainsTo,
  type FederatedDatacenter,
  leafChains,
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
  meshGateway,
  type PlacedProxy,
  startCluster,
  startPlacedProxy,
  waitAllSynced,
  withSidecar,
} from './mesh.js';
import { type ProbeResult, probeSni } from './tls-probe.js';
import { LoadLoop } from './traffic.js';

/** Each phase of a CA root rotation in the primary (trust both → new leaves → retire the old). */
const rotationPhaseMs = 5_000;
/** dc2's name for the outside cluster, and the outside cluster's name for dc2. */
const extPeer = 'ext';
const dc2Peer = 'dc2';

type Peering = { State: string; PeerCAPems: string[]; PeerServerAddresses: string[] };

describe.skipIf(skipWithoutEnvoy())(
  'two federated datacenters peered with one outside cluster, real Envoy gateways and sidecars',
  () => {
    let dc1: FederatedDatacenter;
    let dc2: FederatedDatacenter;
    let ext: MeshProcess;
    let gwExt: PlacedProxy;
    const gwExtPorts = { lan: 0, wan: 0 };
    const placed: PlacedProxy[] = [];
    const apps = new Map<string, App>();
    /** `<caller> <target>` → the caller's upstream's local port. */
    const ports = new Map<string, number>();
    const port = (caller: string, target: string) => ports.get(`${caller} ${target}`)!;
    let td = '';
    let tdExt = '';

    showEnvoyLogsOnFailure();

    /**
     * A caller's registration with one upstream per target, in gateway mode local, each on a port
     * of its own; `<service>@<label>` tells apart two upstreams of one service name.
     */
    async function caller(
      name: string,
      targets: Record<string, { Datacenter: string } | { DestinationPeer: string }>,
    ) {
      const upstreams = [];
      for (const [target, where] of Object.entries(targets)) {
        const p = await listenPort();
        ports.set(`${name} ${target}`, p);
        upstreams.push({
          DestinationName: target.split('@')[0],
          ...where,
          LocalBindPort: p,
          MeshGateway: { Mode: 'local' },
        });
      }
      const app = await startApp('tcp', name);
      return withSidecar(name, app.port, await listenPort(), upstreams);
    }

    /** A service behind a sidecar; its app answers as `appName` (the service's name by default). */
    async function service(
      node: MeshProcess,
      name: string,
      protocol: 'http' | 'tcp',
      appName = name,
    ) {
      const app = await startApp(protocol, appName);
      apps.set(appName, app);
      await node.register(withSidecar(name, app.port, await listenPort()));
    }

    /** The outside cluster: its own server, CA and trust domain, a gateway with LAN and WAN. */
    async function startExt(): Promise<void> {
      ext = await startCluster('ext');
      tdExt = await ext.trustDomain();
      gwExtPorts.lan = await listenPort();
      gwExtPorts.wan = await listenPort();
      await ext.register(meshGateway('gw-ext', gwExtPorts.lan, {}, { wanPort: gwExtPorts.wan }));
      await ext.putConfig({
        Kind: 'mesh',
        DefaultIntentionAction: 'deny',
        Peering: { PeerThroughMeshGateways: true },
      });
      await ext.putConfig({ Kind: 'service-defaults', Name: 'ledger', Protocol: 'http' });
      await ext.putConfig({
        Kind: 'service-intentions',
        Name: 'ledger',
        Sources: [{ Name: 'web', Peer: dc2Peer, Action: 'allow' }],
      });
      await ext.putConfig({
        Kind: 'exported-services',
        Name: 'default',
        Services: [{ Name: 'ledger', Consumers: [{ Peer: dc2Peer }] }],
      });
      await service(ext, 'ledger', 'http');
      for (const name of ['client', 'intruder'])
        await ext.register(
          await caller(name, {
            orders: { DestinationPeer: dc2Peer },
            stock: { DestinationPeer: dc2Peer },
            'orders@dc1': { DestinationPeer: 'dc1' },
          }),
        );
      gwExt = await startPlacedProxy(ext, 'gw-ext', { kind: 'mesh-gateway', datacenter: 'ext' });
    }

    /** The primary and its global configuration: every entry dc2 and its peer depend on. */
    async function startPrimary(secretFile: string): Promise<void> {
      dc1 = await startFederatedDatacenter('dc1', {
        primaryDatacenter: 'dc1',
        loopback: '127.0.1.1',
        secretFile,
        nodeName: 'server-1',
        flags: { caRotationPhaseMs: String(rotationPhaseMs) },
      });
      const s = dc1.server;
      td = await s.trustDomain();
      await s.putConfig({
        Kind: 'mesh',
        DefaultIntentionAction: 'deny',
        Peering: { PeerThroughMeshGateways: true },
      });
      for (const name of ['api', 'orders'])
        await s.putConfig({ Kind: 'service-defaults', Name: name, Protocol: 'http' });
      await s.putConfig({
        Kind: 'service-intentions',
        Name: 'api',
        Sources: [{ Name: 'web', Action: 'allow' }],
      });
      for (const name of ['orders', 'stock'])
        await s.putConfig({
          Kind: 'service-intentions',
          Name: name,
          Sources: [{ Name: 'client', Peer: extPeer, Action: 'allow' }],
        });
      // Global like every config entry; dc2 exports its own instances of these to its peer `ext`.
      await s.putConfig({
        Kind: 'exported-services',
        Name: 'default',
        Services: ['orders', 'stock'].map((Name) => ({ Name, Consumers: [{ Peer: extPeer }] })),
      });
      await service(s, 'api', 'http');
      await service(s, 'orders', 'http', 'orders-dc1');
    }

    beforeAll(async () => {
      const secretFile = federationSecretFile();
      await Promise.all([startPrimary(secretFile), startExt()]);
      dc2 = await startFederatedDatacenter('dc2', {
        primaryDatacenter: 'dc1',
        loopback: '127.0.2.1',
        secretFile,
        nodeName: 'server-2',
        primaryGatewayWanPort: dc1.gatewayPorts.wan,
      });
      placed.push(dc1.gateway, dc2.gateway, gwExt);
      const s = dc2.server;
      // The token dc2 hands out names its gateway only once the replicated mesh entry says so.
      await waitFor(
        async () =>
          (
            await s.api<{ Peering?: { PeerThroughMeshGateways?: boolean } }>(
              'GET',
              '/v1/config/mesh/mesh',
            )
          ).body?.Peering?.PeerThroughMeshGateways === true,
        { timeoutMs: 30_000, intervalMs: 100, what: "dc1's mesh entry replicated to dc2" },
      );
      await Promise.all([
        peerClusters(s, ext, { dialerName: extPeer, acceptorName: dc2Peer }, 60_000),
        peerClusters(dc1.server, ext, { dialerName: extPeer, acceptorName: 'dc1' }, 60_000),
      ]);
      await service(s, 'orders', 'http');
      await service(s, 'stock', 'tcp');
      await s.register(
        await caller('web', { api: { Datacenter: 'dc1' }, ledger: { DestinationPeer: extPeer } }),
      );
      placed.push(
        ...(await Promise.all([
          startPlacedProxy(dc1.server, 'api-sidecar-proxy', { datacenter: 'dc1' }),
          startPlacedProxy(dc1.server, 'orders-sidecar-proxy', { datacenter: 'dc1' }),
          ...['orders', 'stock', 'web'].map((name) =>
            startPlacedProxy(s, `${name}-sidecar-proxy`, { datacenter: 'dc2' }),
          ),
          ...['ledger', 'client', 'intruder'].map((name) =>
            startPlacedProxy(ext, `${name}-sidecar-proxy`, { datacenter: 'ext' }),
          ),
        ])),
      );
    }, 300_000);

    afterAll(async () => {
      await cleanupEnvoys();
      await closeApps();
      await Promise.all([dc1?.server.close(), dc2?.server.close(), ext?.close()]);
      await cleanupProcesses();
    });

    it('every Envoy (three gateways, eight sidecars) is LIVE and SYNCED', async () => {
      expect(placed).toHaveLength(11);
      await waitAllSynced(placed);
    });

    it("dc2's peering is ACTIVE on both sides, through dc2's gateway: ext knows only its WAN address", async () => {
      const peering = async (node: MeshProcess, name: string) =>
        (await node.api<Peering>('GET', `/v1/peering/${name}`)).body;
      expect((await peering(dc2.server, extPeer)).State).toBe('ACTIVE');
      expect((await peering(ext, dc2Peer)).State).toBe('ACTIVE');
      // ext learned dc2's gateway as dc2's server address, never a server's own port.
      expect((await peering(ext, dc2Peer)).PeerServerAddresses).toEqual([
        `127.0.0.1:${dc2.gatewayPorts.wan}`,
      ]);
      const local = 'tcp.mesh_gateway_peering_local.downstream_cx_total';
      expect((await dc2.gateway.envoy.stats(local))[local] ?? 0).toBeGreaterThan(0);
    });

    it('each datacenter has its own peering with ext; ext holds both, in the one trust domain of the federation', async () => {
      const id = async (node: MeshProcess, name: string) =>
        (await node.api<{ ID: string; State: string }>('GET', `/v1/peering/${name}`)).body;
      const [one, two] = [await id(dc1.server, extPeer), await id(dc2.server, extPeer)];
      expect([one.State, two.State]).toEqual(['ACTIVE', 'ACTIVE']);
      expect(one.ID).not.toBe(two.ID);
      const peers = (
        await ext.api<{ Name: string; PeerTrustDomain?: string }[]>('GET', '/v1/peerings')
      ).body;
      expect(peers.map((p) => p.Name).sort()).toEqual(['dc1', 'dc2']);
      // A peer is not a datacenter of the federation, nor the federation a datacenter of ext.
      for (const [node, want] of [
        [dc1.server, ['dc1', 'dc2']],
        [dc2.server, ['dc1', 'dc2']],
        [ext, ['ext']],
      ] as const)
        expect((await node.api('GET', '/v1/catalog/datacenters')).body).toEqual(want);
    });

    it('exported-services is global: written on the primary, dc2 holds the same entry', async () => {
      const read = async (node: MeshProcess) =>
        (await node.api<{ Services: unknown }>('GET', '/v1/config/exported-services/default')).body
          .Services;
      expect(await read(dc2.server)).toEqual(await read(dc1.server));
    });

    it("trust bundles: ext holds the primary's roots for dc2, dc2 holds ext's own", async () => {
      const roots = async (node: MeshProcess) =>
        (await node.api<CaRootsJson>('GET', '/v1/connect/ca/roots')).body.Roots.map(
          (r) => r.RootCert,
        );
      const bundle = async (node: MeshProcess, peer: string) =>
        (await node.api<Peering>('GET', `/v1/peering/${peer}`)).body.PeerCAPems;
      expect(norm(await bundle(ext, dc2Peer))).toEqual(norm(await roots(dc1.server)));
      expect(norm(await bundle(dc2.server, extPeer))).toEqual(norm(await roots(ext)));
      expect(td).not.toBe(tdExt);
    });

    it("dc2's web → dc1's api (federation, mode local through both gateways): mTLS, the app sees web of dc2", async () => {
      const res = await eventually(
        () => httpCall(port('web', 'api'), '/federated'),
        'HTTP web → api',
        60_000,
      );
      expect(res.status).toBe(200);
      expect(res.seen).toMatchObject({ app: 'api', path: '/federated' });
      expect(res.seen!.headers['x-forwarded-client-cert']).toContain(
        `URI=spiffe://${td}/ns/default/dc/dc2/svc/web`,
      );
    });

    it("ext's client → dc2's orders (HTTP) and stock (TCP), peered through both gateways: the app sees client of ext", async () => {
      const res = await eventually(
        () => httpCall(port('client', 'orders'), '/peered'),
        'HTTP client → orders',
        60_000,
      );
      expect(res.status).toBe(200);
      expect(res.seen).toMatchObject({ app: 'orders', path: '/peered' });
      const first = res.seen!.headers['x-forwarded-client-cert']!.split(',')[0]!;
      expect(first).toContain(`URI=spiffe://${tdExt}/ns/default/dc/ext/svc/client`);
      expect(
        await eventually(() => tcpCall(port('client', 'stock')), 'TCP client → stock', 60_000),
      ).toEqual({ greeting: 'stock', echo: 'ping' });
    });

    it("one SNI from two peers: ext's gateway routes it to neither, and ext's local-mode callers dial each datacenter's gateway, each reaching its own orders", async () => {
      const orders = `orders.default.default.${extPeer}.external.${td}`;
      const stock = `stock.default.default.${extPeer}.external.${td}`;
      const gatewayClusters = await gwExt.envoy.clusters();
      expect(gatewayClusters.has(orders), `ext's gateway routes ${orders}`).toBe(false);
      expect(gatewayClusters.get(stock)?.map((h) => h.address)).toEqual([
        `127.0.0.1:${dc2.gatewayPorts.wan}`,
      ]);
      const hosts = async (cluster: string) =>
        (await envoy('client-sidecar-proxy').clusters()).get(cluster)?.map((h) => h.address);
      expect(await hosts(`orders.default.dc1.external.${td}`)).toEqual([
        `127.0.0.1:${dc1.gatewayPorts.wan}`,
      ]);
      expect(await hosts(`orders.default.dc2.external.${td}`)).toEqual([
        `127.0.0.1:${dc2.gatewayPorts.wan}`,
      ]);
      expect(await hosts(`stock.default.dc2.external.${td}`)).toEqual([
        `127.0.0.1:${gwExtPorts.lan}`,
      ]);
      for (const [target, app] of [
        ['orders@dc1', 'orders-dc1'],
        ['orders', 'orders'],
      ] as const) {
        const res = await eventually(
          () => httpCall(port('client', target), `/${target}`),
          `HTTP client → ${target}`,
          60_000,
        );
        expect([res.status, res.seen?.app]).toEqual([200, app]);
      }
    });

    it("dc2's web → ext's ledger (peering from the secondary): ext verifies web's leaf through dc2's intermediate", async () => {
      const res = await eventually(
        () => httpCall(port('web', 'ledger'), '/imported'),
        'HTTP web → ledger',
        60_000,
      );
      expect(res.status).toBe(200);
      expect(res.seen!.headers['x-forwarded-client-cert']!.split(',')[0]).toContain(
        `URI=spiffe://${td}/ns/default/dc/dc2/svc/web`,
      );
    });

    it("intentions written on the primary refuse ext's intruder at L7 (orders) and L4 (stock); no app sees it", async () => {
      const before = new Map([...apps].map(([name, app]) => [name, app.seen.length]));
      expect((await httpCall(port('intruder', 'orders'), '/nope')).status).toBe(403);
      await expect(tcpCall(port('intruder', 'stock'))).rejects.toThrow();
      for (const [name, app] of apps)
        expect(app.seen.length, `${name} saw intruder`).toBe(before.get(name));
      expect((await httpCall(port('client', 'orders'))).status).toBe(200);
    });

    describe("what dc2's WAN port routes, by SNI (a raw TLS client, no certificate)", () => {
      const refused = (r: ProbeResult) => {
        expect(r.answered, JSON.stringify(r)).toBe(false);
        if (!r.answered) expect(r.reason).not.toBe('timeout');
      };
      const wan = () => dc2.gatewayPorts.wan;

      it('peering: exported services under their peered SNI, and the peering server', async () => {
        expect(await probeSni(wan(), `stock.default.default.${extPeer}.external.${td}`)).toEqual({
          answered: true,
          serverUris: [`spiffe://${td}/ns/default/dc/dc2/svc/stock`],
        });
        expect(await probeSni(wan(), `orders.default.default.${extPeer}.external.${td}`)).toEqual({
          answered: true,
          serverUris: [`spiffe://${td}/gateway/mesh/dc/dc2`],
        });
        expect(await probeSni(wan(), `server.dc2.peering.${td}`)).toEqual({
          answered: true,
          serverUris: [`spiffe://${td}/peering/server/dc/dc2`],
        });
      });

      it("federation: dc2's servers, dc1's servers through dc1's gateway, dc2's services by datacenter SNI", async () => {
        expect(await probeSni(wan(), 'server.dc2.consul')).toEqual({
          answered: true,
          serverUris: [`spiffe://${td}/federation/server/dc/dc2`],
        });
        expect(await probeSni(wan(), 'server.dc1.consul')).toEqual({
          answered: true,
          serverUris: [`spiffe://${td}/federation/server/dc/dc1`],
        });
        expect(await probeSni(wan(), `orders.default.dc2.internal.${td}`)).toEqual({
          answered: true,
          serverUris: [`spiffe://${td}/ns/default/dc/dc2/svc/orders`],
        });
      });

      it('no other: an export under another peer, a service not exported, the peer’s own names', async () => {
        for (const sni of [
          `orders.default.default.other.external.${td}`,
          `web.default.default.${extPeer}.external.${td}`,
          `api.default.default.${extPeer}.external.${td}`,
          `server.ext.peering.${tdExt}`,
          `ledger.default.default.${dc2Peer}.external.${tdExt}`,
          `server.dc2.peering.${tdExt}`,
        ])
          refused(await probeSni(wan(), sni));
      });
    });

    it("dc2's peering server presents leaf + dc2's intermediate, which chain to dc1's root, not to ext's", async () => {
      const chain = await presentedChain(dc2.gatewayPorts.wan, `server.dc2.peering.${td}`);
      const roots = (await dc1.server.api<CaRootsJson>('GET', '/v1/connect/ca/roots')).body;
      const root = new X509Certificate(roots.Roots[0]!.RootCert);
      expect(chain).toHaveLength(2);
      expect(chainsTo(chain, root)).toBe(true);
      expect(chain[0]!.subjectAltName).toContain(`DNS:server.dc2.peering.${td}`);
    });

    it("a root rotation in the primary reaches ext through dc2's peering: ext trusts the new root before dc2's leaves use it, and no request across the peering fails", async () => {
      const rootsOf = async (node: MeshProcess) =>
        (await node.api<CaRootsJson>('GET', '/v1/connect/ca/roots')).body;
      const before = await rootsOf(dc1.server);
      const inbound = new LoadLoop(port('client', 'orders'), {
        keepAliveWorkers: 1,
        freshWorkers: 1,
      });
      const outbound = new LoadLoop(port('web', 'ledger'), {
        keepAliveWorkers: 1,
        freshWorkers: 1,
      });
      const loads = [inbound, outbound];
      try {
        await Promise.all(loads.map((l) => l.waitForSuccesses(3)));
        for (const l of loads) l.phase('rotation');
        expect((await dc1.server.api('POST', '/v1/connect/ca/rotate')).status).toBe(200);
        const after = await waitFor(
          async () => {
            const r = await rootsOf(dc1.server);
            return r.Roots.length === 1 && r.ActiveRootID !== before.ActiveRootID && r;
          },
          {
            timeoutMs: 6 * rotationPhaseMs + 30_000,
            intervalMs: 200,
            what: "the primary's rotation to retire the old root",
          },
        );
        const newRoot = after.Roots[0]!.RootCert;
        await waitFor(
          async () =>
            JSON.stringify(
              norm((await ext.api<Peering>('GET', `/v1/peering/${dc2Peer}`)).body.PeerCAPems),
            ) === JSON.stringify(norm([newRoot])),
          { timeoutMs: 30_000, intervalMs: 200, what: "ext's bundle for dc2 to be the new root" },
        );
        const root = new X509Certificate(newRoot);
        for (const name of ['orders-sidecar-proxy', 'web-sidecar-proxy', 'gw-dc2'])
          await eventually(async () => {
            const chains = leafChains(await envoy(name).configDump());
            expect(chains.length).toBeGreaterThan(0);
            for (const chain of chains) expect(chainsTo(chain, root), name).toBe(true);
          }, `${name} to hold leaves under the new root`);
        await Promise.all(loads.map((l) => l.waitForSuccesses(3)));
      } finally {
        await Promise.all(loads.map((l) => l.stop()));
      }
      expect(inbound.counts('rotation').failures, 'ext → dc2 failures').toEqual({});
      expect(outbound.counts('rotation').failures, 'dc2 → ext failures').toEqual({});
    });

    function envoy(name: string): EnvoyProcess {
      return placed.find((p) => p.envoy.name === name)!.envoy;
    }
  },
);

/** PEMs in a comparable form (trimmed, sorted). */
function norm(pems: readonly string[]): string[] {
  return pems.map((p) => p.trim()).sort();
}

/** The certificates a TLS server at 127.0.0.1:`port` sends for `sni`, leaf first. */
function presentedChain(port: number, sni: string): Promise<X509Certificate[]> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: sni,
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no TLS answer for ${sni} within 10 s`));
    }, 10_000);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const chain: X509Certificate[] = [];
      let cert = socket.getPeerCertificate(true);
      while (cert?.raw && chain.length < 4) {
        chain.push(new X509Certificate(cert.raw));
        if (!cert.issuerCertificate || cert.issuerCertificate === cert) break;
        cert = cert.issuerCertificate;
      }
      socket.destroy();
      resolve(chain);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
