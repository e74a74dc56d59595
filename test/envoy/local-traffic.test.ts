/**
 * One cluster, real Envoys, real traffic: `web`'s sidecar calls `api` services behind their own
 * sidecars over TCP, HTTP/1.1, HTTP/2, gRPC (unary and streaming) and WebSocket, with mTLS between
 * the sidecars, the caller's identity handed to the app in `x-forwarded-client-cert`, and
 * intentions allowing `web` and denying `intruder` (refused before the app sees anything).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupProcesses } from '../helpers/process.js';
import {
  type App,
  closeApps,
  grpcStream,
  grpcUnary,
  http2Call,
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
  waitHealthy,
} from './harness.js';
import {
  eventually,
  type MeshProcess,
  startCluster,
  startProxy,
  waitSynced,
  withSidecar,
} from './mesh.js';

const protocols = ['tcp', 'http', 'http2', 'grpc'] as const;
type Protocol = (typeof protocols)[number];

describe.skipIf(skipWithoutEnvoy())('one cluster with real Envoy sidecars', () => {
  let dc: MeshProcess;
  let td: string;
  const apps = new Map<Protocol, App>();
  /** `web`'s local bind port per upstream protocol, and `intruder`'s. */
  const webPorts = new Map<Protocol, number>();
  const intruderPorts = new Map<Protocol, number>();
  const envoys: EnvoyProcess[] = [];

  showEnvoyLogsOnFailure();

  beforeAll(async () => {
    dc = await startCluster('dc1');
    td = await dc.trustDomain();
    await dc
      .putConfig({ Kind: 'mesh', DefaultIntentionAction: 'deny' } as const)
      .catch(async () => undefined);
    for (const protocol of protocols) {
      const name = `api-${protocol}`;
      apps.set(protocol, await startApp(protocol, name));
      if (protocol !== 'tcp')
        await dc.putConfig({ Kind: 'service-defaults', Name: name, Protocol: protocol });
      await dc.register(withSidecar(name, apps.get(protocol)!.port, await listenPort()));
      await dc.putConfig({
        Kind: 'service-intentions',
        Name: name,
        Sources: [
          { Name: 'web', Action: 'allow' },
          { Name: 'intruder', Action: 'deny' },
        ],
      });
      webPorts.set(protocol, await listenPort());
      intruderPorts.set(protocol, await listenPort());
    }
    const upstreams = (ports: Map<Protocol, number>) =>
      protocols.map((p) => ({ DestinationName: `api-${p}`, LocalBindPort: ports.get(p) }));
    await dc.register(
      withSidecar('web', await listenPort(), await listenPort(), upstreams(webPorts)),
    );
    await dc.register(
      withSidecar('intruder', await listenPort(), await listenPort(), upstreams(intruderPorts)),
    );
    const ids = [
      ...protocols.map((p) => `api-${p}-sidecar-proxy`),
      'web-sidecar-proxy',
      'intruder-sidecar-proxy',
    ];
    envoys.push(...(await Promise.all(ids.map((id) => startProxy(dc, id, { datacenter: 'dc1' })))));
  });

  afterAll(async () => {
    await cleanupEnvoys();
    await closeApps();
    await dc?.close();
    await cleanupProcesses();
  });

  it('every Envoy is LIVE with nothing rejected or warming, and proxy-status shows SYNCED for every type', async () => {
    for (const envoy of envoys) {
      await waitHealthy(envoy);
      await waitSynced(dc, envoy.name);
    }
  });

  it('TCP: web reaches api-tcp through both sidecars', async () => {
    const res = await eventually(() => tcpCall(webPorts.get('tcp')!), 'TCP through web → api-tcp');
    expect(res).toEqual({ greeting: 'api-tcp', echo: 'ping' });
  });

  it('HTTP/1.1: the app sees the request and the caller identity in x-forwarded-client-cert', async () => {
    const res = await eventually(
      () => httpCall(webPorts.get('http')!, '/hello?x=1'),
      'HTTP through web → api-http',
    );
    expect(res.status).toBe(200);
    expect(res.seen).toMatchObject({ app: 'api-http', method: 'GET', path: '/hello?x=1' });
    expect(res.seen!.headers['x-forwarded-client-cert']).toContain(
      `URI=spiffe://${td}/ns/default/dc/dc1/svc/web`,
    );
  });

  it('HTTP/2: h2c from the app to its sidecar, h2 to the app behind the other one', async () => {
    const res = await eventually(
      () => http2Call(webPorts.get('http2')!, '/two'),
      'HTTP/2 through web → api-http2',
    );
    expect(res.status).toBe(200);
    expect(res.seen).toMatchObject({ app: 'api-http2', path: '/two' });
    expect(res.seen!.headers['x-forwarded-client-cert']).toContain(
      `URI=spiffe://${td}/ns/default/dc/dc1/svc/web`,
    );
  });

  it('gRPC unary and bidirectional streaming', async () => {
    const seen = await eventually(
      () => grpcUnary(webPorts.get('grpc')!),
      'gRPC through web → api-grpc',
    );
    expect(seen.app).toBe('api-grpc');
    expect(seen.headers['x-forwarded-client-cert']).toContain(
      `URI=spiffe://${td}/ns/default/dc/dc1/svc/web`,
    );
    expect(await grpcStream(webPorts.get('grpc')!, ['1', '2', '3'])).toEqual([
      'api-grpc:1',
      'api-grpc:2',
      'api-grpc:3',
    ]);
  });

  it('WebSocket: an HTTP/1.1 upgrade through both sidecars', async () => {
    const answers = await eventually(
      () => webSocketCall(webPorts.get('http')!, ['a', 'b']),
      'WebSocket through web → api-http',
    );
    expect(answers).toEqual(['api-http:a', 'api-http:b']);
    const upgrade = apps.get('http')!.seen.find((s) => s.method === 'UPGRADE');
    expect(upgrade?.headers['x-forwarded-client-cert']).toContain(
      `URI=spiffe://${td}/ns/default/dc/dc1/svc/web`,
    );
  });

  it('an intention denying intruder refuses it on every protocol, and no request or byte of it reaches an app', async () => {
    const before = new Map([...apps].map(([p, a]) => [p, a.seen.length]));
    await expect(tcpCall(intruderPorts.get('tcp')!)).rejects.toThrow();
    const http = await httpCall(intruderPorts.get('http')!, '/nope');
    expect(http.status).toBe(403);
    const h2 = await http2Call(intruderPorts.get('http2')!, '/nope');
    expect(h2.status).toBe(403);
    await expect(grpcUnary(intruderPorts.get('grpc')!)).rejects.toMatchObject({ code: 7 }); // PERMISSION_DENIED
    await expect(webSocketCall(intruderPorts.get('http')!, ['x'])).rejects.toThrow(/403/);
    for (const [p, app] of apps)
      expect(app.seen.length, `${app.name} saw intruder`).toBe(before.get(p));
  });
});
