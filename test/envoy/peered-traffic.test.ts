/**
 * Two peered clusters (two `isthmus server` processes), every proxy a real Envoy: A exports
 * `api-tcp`, `api-http` and `api-grpc` (each behind a sidecar) to B through A's mesh gateway; B's
 * `web` calls them in gateway mode `remote` (straight to A's gateway) and `reports` in mode `local`
 * (through B's gateway, then A's), over TCP, HTTP, gRPC and WebSocket. Intentions in A name B's
 * services as peer sources and hold at L4 (TCP) and L7 (HTTP, through A's gateway terminating the
 * peer's mTLS): with the mesh default `deny` an `allow` admits exactly B's `web`; with the default
 * `allow` a `deny` refuses B's `intruder`. The called app sees who called.
 *
 * Both gateways bind separate LAN and WAN listeners, so the cross-peer traffic also shows each side
 * routes what it must: B's local-mode calls enter B's LAN side, every call from B enters A's WAN
 * side. A raw TLS client at each WAN port then finds exactly what is exported to B answering, and
 * every other SNI refused (issue 18, docs/architecture.md §5 "What a gateway routes").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MeshProcess, startMeshProcess } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes } from '../helpers/peered-mesh.js';
import { cleanupProcesses } from '../helpers/process.js';
import {
  type App,
  closeApps,
  grpcStream,
  grpcUnary,
  httpCall,
  listenPort,
  startApp,
  tcpCall,
  webSocketCall,
} from './apps.js';
import {
  cleanupEnvoys,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
  waitDrained,
} from './harness.js';
import { eventually, meshGateway, startPlacedProxy, waitAllSynced, withSidecar } from './mesh.js';
import { type ProbeResult, probeSni } from './tls-probe.js';

const services = ['api-tcp', 'api-http', 'api-grpc'] as const;
type Service = (typeof services)[number];
const protocolOf = { 'api-tcp': 'tcp', 'api-http': 'http', 'api-grpc': 'grpc' } as const;
const callers = ['web', 'reports', 'intruder'] as const;
type Caller = (typeof callers)[number];

describe.skipIf(skipWithoutEnvoy())(
  'two peered clusters with real Envoy gateways and sidecars',
  () => {
    let a: MeshProcess;
    let b: MeshProcess;
    let tdB: string;
    const apps = new Map<Service, App>();
    /** Local bind port of each caller's upstream to each service. */
    const ports = new Map<Caller, Map<Service, number>>();
    const envoys: { node: MeshProcess; envoy: EnvoyProcess }[] = [];
    let gwA: EnvoyProcess;
    let gwB: EnvoyProcess;
    let tdA: string;
    /** Each gateway's LAN and WAN listener ports. */
    const gwPorts = { a: { lan: 0, wan: 0 }, b: { lan: 0, wan: 0 } };
    const port = (caller: Caller, service: Service) => ports.get(caller)!.get(service)!;
    const webIdentity = () => `spiffe://${tdB}/ns/default/dc/dc-b/svc/web`;
    let secretPort = 0;

    showEnvoyLogsOnFailure();

    beforeAll(async () => {
      ({ a, b } = await startPeeredMeshes({}, {}, startMeshProcess));
      secretPort = await listenPort();
      tdB = await b.trustDomain();
      tdA = await a.trustDomain();
      for (const side of [gwPorts.a, gwPorts.b]) {
        side.lan = await listenPort();
        side.wan = await listenPort();
      }
      await a.register(meshGateway('gw-a', gwPorts.a.lan, {}, { wanPort: gwPorts.a.wan }));
      await b.register(meshGateway('gw-b', gwPorts.b.lan, {}, { wanPort: gwPorts.b.wan }));
      for (const service of services) {
        apps.set(service, await startApp(protocolOf[service], service));
        if (protocolOf[service] !== 'tcp')
          await a.putConfig({
            Kind: 'service-defaults',
            Name: service,
            Protocol: protocolOf[service],
          });
        await a.register(withSidecar(service, apps.get(service)!.port, await listenPort()));
      }
      // `secret` has a live sidecar and is exported to no one. `cluster-c` is a peering A has
      // only issued a token for (no bundle yet): api-tcp is exported to it too.
      await a.register(withSidecar('secret', (await startApp('tcp', 'secret')).port, secretPort));
      expect((await a.api('POST', '/v1/peering/token', { PeerName: 'cluster-c' })).status).toBe(
        200,
      );
      await a.putConfig(
        exportEntry({
          ...Object.fromEntries(services.map((s) => [s, ['cluster-b']])),
          'api-tcp': ['cluster-b', 'cluster-c'],
        }),
      );
      for (const caller of callers) {
        const mine = new Map<Service, number>();
        for (const service of services) mine.set(service, await listenPort());
        ports.set(caller, mine);
        const mode = caller === 'reports' ? 'local' : 'remote';
        const upstreams = services.map((s) => ({
          DestinationName: s,
          DestinationPeer: 'cluster-a',
          LocalBindPort: mine.get(s),
          MeshGateway: { Mode: mode },
        }));
        await b.register(withSidecar(caller, await listenPort(), await listenPort(), upstreams));
      }
      // Mesh default deny in A: only B's web and reports are allowed, by name and peer.
      await a.putConfig({ Kind: 'mesh', DefaultIntentionAction: 'deny' });
      for (const service of services) {
        await a.putConfig({
          Kind: 'service-intentions',
          Name: service,
          Sources: ['web', 'reports'].map((Name) => ({ Name, Peer: 'cluster-b', Action: 'allow' })),
        });
      }
      const started = await Promise.all([
        startPlacedProxy(a, 'gw-a', { kind: 'mesh-gateway', datacenter: 'dc-a' }),
        startPlacedProxy(b, 'gw-b', { kind: 'mesh-gateway', datacenter: 'dc-b' }),
        ...[...services, 'secret'].map((s) =>
          startPlacedProxy(a, `${s}-sidecar-proxy`, { datacenter: 'dc-a' }),
        ),
        ...callers.map((c) => startPlacedProxy(b, `${c}-sidecar-proxy`, { datacenter: 'dc-b' })),
      ]);
      envoys.push(...started);
      gwA = started[0]!.envoy;
      gwB = started[1]!.envoy;
    });

    afterAll(async () => {
      await cleanupEnvoys();
      await closeApps();
      await Promise.all([a?.close(), b?.close()]);
      await cleanupProcesses();
    });

    it('every Envoy (two gateways, seven sidecars) is LIVE with nothing rejected or warming, and SYNCED', async () => {
      expect(envoys).toHaveLength(9);
      await waitAllSynced(envoys);
    });

    it('every Envoy gets its config over TLS: a handshake on its xDS cluster, none failed', async () => {
      for (const { envoy } of envoys) {
        const stats = await envoy.stats('cluster.isthmus_xds.ssl');
        expect(stats['cluster.isthmus_xds.ssl.handshake'], envoy.name).toBeGreaterThan(0);
        expect(stats['cluster.isthmus_xds.ssl.connection_error'] ?? 0, envoy.name).toBe(0);
        expect(stats['cluster.isthmus_xds.ssl.fail_verify_san'] ?? 0, envoy.name).toBe(0);
      }
    });

    for (const caller of ['web', 'reports'] as const) {
      const mode = caller === 'web' ? 'remote' : 'local';
      describe(`B's ${caller} → A (gateway mode ${mode})`, () => {
        it('TCP', async () => {
          expect(
            await eventually(() => tcpCall(port(caller, 'api-tcp')), `TCP ${caller} → api-tcp`),
          ).toEqual({ greeting: 'api-tcp', echo: 'ping' });
        });

        it('HTTP: the app sees the caller in B as the first x-forwarded-client-cert element', async () => {
          const res = await eventually(
            () => httpCall(port(caller, 'api-http'), '/peered'),
            `HTTP ${caller} → api-http`,
          );
          expect(res.status).toBe(200);
          expect(res.seen).toMatchObject({ app: 'api-http', path: '/peered' });
          const first = res.seen!.headers['x-forwarded-client-cert']!.split(',')[0]!;
          expect(first).toContain(`URI=spiffe://${tdB}/ns/default/dc/dc-b/svc/${caller}`);
        });

        it('gRPC unary and streaming', async () => {
          const seen = await eventually(
            () => grpcUnary(port(caller, 'api-grpc')),
            `gRPC ${caller} → api-grpc`,
          );
          expect(seen.app).toBe('api-grpc');
          expect(seen.headers['x-forwarded-client-cert']).toContain(
            `URI=spiffe://${tdB}/ns/default/dc/dc-b/svc/${caller}`,
          );
          expect(await grpcStream(port(caller, 'api-grpc'), ['x', 'y'])).toEqual([
            'api-grpc:x',
            'api-grpc:y',
          ]);
        });

        it('WebSocket', async () => {
          expect(
            await eventually(
              () => webSocketCall(port(caller, 'api-http'), ['hi']),
              `WebSocket ${caller} → api-http`,
            ),
          ).toEqual(['api-http:hi']);
        });
      });
    }

    it("local mode really crosses B's gateway; remote mode does not", async () => {
      const stats = await gwB.stats();
      const through = Object.entries(stats).filter(
        ([k, v]) =>
          k.startsWith('cluster.') &&
          k.endsWith('.upstream_cx_total') &&
          k.includes('.external.') &&
          v > 0,
      );
      expect(
        through.length,
        "B's gateway opened connections to A's exported services",
      ).toBeGreaterThan(0);
    });

    describe('what a connection to a gateway can reach, by SNI (a raw TLS client, no certificate)', () => {
      const sniAtA = (peer: string, svc: string) =>
        `${svc}.default.default.${peer}.external.${tdA}`;
      const idA = (svc: string) => `spiffe://${tdA}/ns/default/dc/dc-a/svc/${svc}`;
      const refused = (r: ProbeResult) => {
        expect(r.answered, JSON.stringify(r)).toBe(false);
        // Closed or reset by the gateway, not left hanging.
        if (!r.answered) expect(r.reason).not.toBe('timeout');
      };

      it("A's WAN port: a service exported to B answers under B's SNI (TCP: its own sidecar; HTTP: A's gateway ends the peer's mTLS)", async () => {
        expect(await probeSni(gwPorts.a.wan, sniAtA('cluster-b', 'api-tcp'))).toEqual({
          answered: true,
          serverUris: [idA('api-tcp')],
        });
        expect(await probeSni(gwPorts.a.wan, sniAtA('cluster-b', 'api-http'))).toEqual({
          answered: true,
          serverUris: [`spiffe://${tdA}/gateway/mesh/dc/dc-a`],
        });
      });

      it("A's WAN port refuses every other SNI: a local service's internal name (exported or not), a gateway cluster's name, another peer's export, a service not exported, a random name, none", async () => {
        const before = await noChainMatches(gwA);
        const others: (string | undefined)[] = [
          `secret.default.dc-a.internal.${tdA}`,
          `api-tcp.default.dc-a.internal.${tdA}`,
          `exported~api-tcp.default.dc-a.internal.${tdA}`,
          sniAtA('cluster-c', 'api-tcp'),
          sniAtA('cluster-b', 'secret'),
          `api-tcp.default.default.cluster-a.external.${tdB}`,
          `server.dc-a.peering.${tdA}`,
          'example.com',
          undefined,
        ];
        for (const sni of others) refused(await probeSni(gwPorts.a.wan, sni));
        // Envoy counted each one as matching no filter chain: the gateway refused them itself.
        expect((await noChainMatches(gwA)) - before).toBe(others.length);
      });

      it("B's WAN port refuses the SNI of a service B imports, which B's LAN port routes to A (B's local-mode callers use it)", async () => {
        const imported = sniAtA('cluster-b', 'api-tcp');
        refused(await probeSni(gwPorts.b.wan, imported));
        expect(await probeSni(gwPorts.b.lan, imported)).toEqual({
          answered: true,
          serverUris: [idA('api-tcp')],
        });
        refused(await probeSni(gwPorts.b.lan, `web.default.dc-b.internal.${tdB}`));
      });

      it("A's LAN port, with nothing to route on its side, stays bound and closes every connection", async () => {
        for (const sni of [sniAtA('cluster-b', 'api-tcp'), `secret.default.dc-a.internal.${tdA}`]) {
          const r = await probeSni(gwPorts.a.lan, sni);
          refused(r);
          if (!r.answered) expect(r.reason).not.toBe('ECONNREFUSED');
        }
      });
    });

    it("default deny: an allow for exactly B's web admits it; B's intruder is refused at L4 and L7 and no app sees a request or byte from it", async () => {
      const before = new Map([...apps].map(([s, app]) => [s, app.seen.length]));
      await expect(tcpCall(port('intruder', 'api-tcp'))).rejects.toThrow();
      expect((await httpCall(port('intruder', 'api-http'), '/nope')).status).toBe(403);
      await expect(grpcUnary(port('intruder', 'api-grpc'))).rejects.toMatchObject({ code: 7 });
      for (const [s, app] of apps) expect(app.seen.length, `${s} saw intruder`).toBe(before.get(s));
      expect(
        (await httpCall(port('web', 'api-http'))).seen?.headers['x-forwarded-client-cert'],
      ).toContain(webIdentity());
    });

    it("default allow: a deny for exactly B's web refuses it at L4 and L7; B's intruder, with no intention, now passes", async () => {
      await a.putConfig({ Kind: 'mesh', DefaultIntentionAction: 'allow' });
      for (const service of services) {
        await a.putConfig({
          Kind: 'service-intentions',
          Name: service,
          Sources: [{ Name: 'web', Peer: 'cluster-b', Action: 'deny' }],
        });
      }
      // Each of A's sidecars applies the change on its own: wait for each service to refuse web.
      await eventually(
        async () => expect(await httpCall(port('web', 'api-http'))).toMatchObject({ status: 403 }),
        'api-http refusing web',
      );
      await eventually(
        () => expect(tcpCall(port('web', 'api-tcp'))).rejects.toThrow(),
        'api-tcp refusing web',
      );
      await eventually(
        () => expect(grpcUnary(port('web', 'api-grpc'))).rejects.toMatchObject({ code: 7 }),
        'api-grpc refusing web',
      );
      // A new connection sees the deny; A's gateway's pooled connections to the sidecars still ride
      // the old filter chain (old RBAC: web allowed) until Envoy's drain closes them.
      for (const { node, envoy } of envoys) if (node === a) await waitDrained(envoy);
      const before = new Map([...apps].map(([s, app]) => [s, app.seen.length]));
      await expect(tcpCall(port('web', 'api-tcp'))).rejects.toThrow();
      expect((await httpCall(port('web', 'api-http'), '/nope')).status).toBe(403);
      await expect(grpcUnary(port('web', 'api-grpc'))).rejects.toMatchObject({ code: 7 });
      for (const [s, app] of apps) expect(app.seen.length, `${s} saw web`).toBe(before.get(s));
      // The default admits everyone else, the intruder of the previous step included.
      expect(await tcpCall(port('intruder', 'api-tcp'))).toEqual({
        greeting: 'api-tcp',
        echo: 'ping',
      });
      const http = await httpCall(port('intruder', 'api-http'));
      expect(http.status).toBe(200);
      expect(http.seen!.headers['x-forwarded-client-cert']!.split(',')[0]).toContain(
        `URI=spiffe://${tdB}/ns/default/dc/dc-b/svc/intruder`,
      );
      expect((await grpcUnary(port('intruder', 'api-grpc'))).app).toBe('api-grpc');
    });
  },
);

/** Envoy's count of connections no filter chain of any listener matched. */
async function noChainMatches(envoy: EnvoyProcess): Promise<number> {
  const stats = await envoy.stats('no_filter_chain_match');
  return Object.entries(stats)
    .filter(([k]) => k.endsWith('.no_filter_chain_match') && !k.startsWith('listener.admin'))
    .reduce((sum, [, v]) => sum + v, 0);
}
