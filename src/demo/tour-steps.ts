/**
 * The steps of `isthmus demo`'s tour, each driving the clusters through their HTTP API the way a
 * user would, and waiting (with a deadline) for the outcome a user would check.
 */
import { peeredServiceSni, publicListenerName, upstreamListenerName } from '../mesh/names.js';
import { clientFromUpstream, serverFromPublicListener } from '../probe/pushed-tls.js';
import { handshakeVia, tlsAcceptor } from '../probe/tls-handshake.js';
import type { XdsProbe } from '../probe/xds-probe.js';
import { type DemoCluster, startDemoCluster } from './demo-cluster.js';
import type { DemoRun } from './demo-run.js';
import { chainTarget, type GatewayStandIn, startGatewayStandIn } from './gateway-stand-in.js';
import { openSocketSlot, type SocketSlot } from './socket-slot.js';
import { summariseUpstream, type UpstreamSummary } from './upstream-summary.js';

/**
 * Inner waits give up first, so their message (what was awaited, the last error) is the one shown.
 */
const pollTimeoutMs = 12_000;
export const upstreamBindPort = 19090;
const upstreamListener = upstreamListenerName('api', '127.0.0.1', upstreamBindPort, 'cluster-a');

/** Polls `fn` until it returns a value (not undefined), for at most `timeoutMs`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = pollTimeoutMs,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `${what} not reached within ${timeoutMs / 1000} s${last instanceof Error ? ` (${last.message})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startClusters(run: DemoRun): Promise<{ a: DemoCluster; b: DemoCluster }> {
  const started = await Promise.allSettled([
    startDemoCluster('A', 'dc-a', run.workDir, run.logger),
    startDemoCluster('B', 'dc-b', run.workDir, run.logger),
  ]);
  for (const s of started) if (s.status === 'fulfilled') run.own(s.value, (c) => c.stop());
  const [a, b] = started;
  if (a.status === 'rejected') throw a.reason;
  if (b.status === 'rejected') throw b.reason;
  return { a: a.value, b: b.value };
}

/**
 * The stand-ins for the proxies that carry traffic; each gateway routes by its probe's config once
 * connected.
 */
export interface DemoMesh {
  readonly apiSlot: SocketSlot;
  readonly gatewayA: GatewayStandIn;
  readonly gatewayB: GatewayStandIn;
  readonly gateways: { a?: XdsProbe; b?: XdsProbe };
}

const sidecar = (name: string, port: number, upstreams: unknown[], sidecarPort?: number) => ({
  ID: name,
  Name: name,
  Address: '127.0.0.1',
  Port: port,
  Connect: {
    SidecarService: {
      ...(sidecarPort === undefined ? {} : { Port: sidecarPort }),
      Proxy: { Upstreams: upstreams },
    },
  },
});
/** A mesh gateway with LAN and WAN on one loopback address (one listener). */
export const gateway = (id: string, port: number) => ({
  ID: id,
  Name: 'mesh-gateway',
  Kind: 'mesh-gateway',
  Address: '127.0.0.1',
  Port: port,
  TaggedAddresses: {
    lan: { Address: '127.0.0.1', Port: port },
    wan: { Address: '127.0.0.1', Port: port },
  },
});

/**
 * A's api sidecar (a TLS server fed from A's pushed config later) and both gateways need their
 * ports before they are registered, so those are bound first.
 */
export async function registerServices(
  run: DemoRun,
  a: DemoCluster,
  b: DemoCluster,
): Promise<DemoMesh> {
  const gateways: DemoMesh['gateways'] = {};
  const apiSlot = run.own(await openSocketSlot(), (s) => s.close());
  const gatewayA = run.own(await startGatewayStandIn(() => gateways.a), (g) => g.close());
  const gatewayB = run.own(await startGatewayStandIn(() => gateways.b), (g) => g.close());
  await a.api.put('/v1/agent/service/register', sidecar('api', 9090, [], apiSlot.port));
  await a.api.put('/v1/agent/service/register', gateway('gw-a', gatewayA.address.port));
  await b.api.put(
    '/v1/agent/service/register',
    sidecar('web', 8080, [
      { DestinationName: 'api', DestinationPeer: 'cluster-a', LocalBindPort: upstreamBindPort },
    ]),
  );
  await b.api.put('/v1/agent/service/register', gateway('gw-b', gatewayB.address.port));
  return { apiSlot, gatewayA, gatewayB, gateways };
}

/**
 * A generates a token for `cluster-b`, B establishes with it as `cluster-a`; both sides go ACTIVE.
 */
export async function peerClusters(a: DemoCluster, b: DemoCluster): Promise<void> {
  const { PeeringToken } = await a.api.post<{ PeeringToken: string }>('/v1/peering/token', {
    PeerName: 'cluster-b',
  });
  await b.api.post('/v1/peering/establish', { PeerName: 'cluster-a', PeeringToken });
  const active = (c: DemoCluster, peer: string) => async () =>
    (await c.api.get<{ State: string }>(`/v1/peering/${peer}`)).State === 'ACTIVE'
      ? true
      : undefined;
  await until('A→cluster-b ACTIVE', active(a, 'cluster-b'));
  await until('B→cluster-a ACTIVE', active(b, 'cluster-a'));
}

/** Exports api to `cluster-b`; resolves with the number of api instances B imported. */
export async function exportApi(a: DemoCluster, b: DemoCluster): Promise<number> {
  await a.api.put('/v1/config', {
    Kind: 'exported-services',
    Name: 'default',
    Services: [{ Name: 'api', Consumers: [{ Peer: 'cluster-b' }] }],
  });
  return until('api imported in B', async () => {
    const instances = await b.api.get<unknown[]>('/v1/health/service/api?peer=cluster-a');
    return instances.length > 0 ? instances.length : undefined;
  });
}

export interface Upstream {
  readonly webB: XdsProbe;
  readonly apiA: XdsProbe;
  readonly summary: UpstreamSummary;
  readonly tdA: string;
  readonly tdB: string;
}

/**
 * Probes connect as each proxy; B's web sidecar must hold the whole api upstream, ending at A's
 * gateway.
 */
export async function readUpstream(
  a: DemoCluster,
  b: DemoCluster,
  mesh: DemoMesh,
): Promise<Upstream> {
  const trustDomain = async (c: DemoCluster) =>
    (await c.api.get<{ TrustDomain: string }>('/v1/connect/ca/roots')).TrustDomain;
  const [tdA, tdB] = await Promise.all([trustDomain(a), trustDomain(b)]);
  const [webB, apiA, gwA, gwB] = await Promise.all([
    b.probe('web-sidecar-proxy'),
    a.probe('api-sidecar-proxy'),
    a.probe('gw-a'),
    b.probe('gw-b'),
  ]);
  mesh.gateways.a = gwA;
  mesh.gateways.b = gwB;
  const gatewayEndpoint = `127.0.0.1:${mesh.gatewayA.address.port}`;
  const summary = await until("B's web sidecar holding the api upstream", () => {
    const s = summariseUpstream(webB, upstreamListener);
    return typeof s !== 'string' && s.endpoints.includes(gatewayEndpoint) ? s : undefined;
  });
  return { webB, apiA, summary, tdA, tdB };
}

/**
 * Client: B's web sidecar's upstream cluster (leaf, peer bundle, SNI, SAN matchers) dialing the
 * endpoint B received (A's gateway). Server: A's api sidecar's public listener material, accepting
 * on the registered sidecar port. In between: A's gateway stand-in, routing by A's pushed chains.
 */
export async function handshakeThroughGateway(
  mesh: DemoMesh,
  u: Upstream,
): Promise<{ serverSaw: string; clientSaw: string; protocol: string | null }> {
  const listener = publicListenerName('127.0.0.1', mesh.apiSlot.port);
  const server = await until(`api's public listener trusting ${u.tdB}`, () => {
    const s = serverFromPublicListener(u.apiA, listener);
    return s.trustDomains?.some((t) => t.name === u.tdB) ? s : undefined;
  });
  const sni = peeredServiceSni(u.tdA, 'cluster-b', { name: 'api' });
  if (u.summary.cluster.sni !== sni)
    throw new Error(`B's upstream SNI is ${u.summary.cluster.sni}, expected ${sni}`);
  await until(`A's gateway chain for ${sni} to api's sidecar`, () => {
    const gw = mesh.gateways.a;
    return gw && chainTarget(gw, sni)?.port === mesh.apiSlot.port ? true : undefined;
  });
  const client = clientFromUpstream(u.webB, u.summary.cluster.name);
  const [host, port] = u.summary.endpoints[0]!.split(':') as [string, string];
  const acceptor = tlsAcceptor(server);
  mesh.apiSlot.serve((socket) => acceptor.server.emit('connection', socket));
  try {
    const result = await handshakeVia(client, { host, port: Number(port) }, acceptor, 5_000);
    if (!result.ok) throw new Error(result.error.message);
    return {
      serverSaw: result.value.serverSawClientUris.join(', '),
      clientSaw: result.value.clientSawServerUris.join(', '),
      protocol: result.value.protocol,
    };
  } finally {
    mesh.apiSlot.serve(undefined);
    await acceptor.close();
  }
}
