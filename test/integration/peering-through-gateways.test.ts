/**
 * Peering through mesh gateways (`mesh` entry `Peering.PeerThroughMeshGateways` on both sides), end
 * to end. There is no Envoy here: a Node TCP forwarder stands in for each gateway, forwarding every
 * connection to the endpoint of the pushed gateway chain for the one server name it carries (A's
 * gateway: `server.dc-a.peering.<tdA>` → A's peering port; B's gateway: that same server name → A's
 * server addresses, i.e. A's gateway). A's token carries A's gateway WAN address; B dials its own
 * gateway first; both sides go ACTIVE with the stream flowing through both forwarders.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peeringServerName } from '../../src/mesh/names.js';
import { parseToken } from '../../src/peering/token.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';
import { startMeshServer, type MeshServer } from '../helpers/mesh-server.js';
import { waitFor } from '../helpers/wait.js';

type Json = any;

interface Forwarder {
  readonly address: string;
  readonly port: number;
  connections: number;
  /** Cuts every connection in flight (the peering stream then redials). */
  dropAll(): void;
  close(): Promise<void>;
}

/**
 * A TCP forwarder standing in for one Envoy gateway chain: each connection goes to `target()`
 * (closed when unknown).
 */
async function forwarder(
  target: () => { host: string; port: number } | undefined,
): Promise<Forwarder> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    sockets.add(down);
    down.on('close', () => sockets.delete(down));
    const t = target();
    if (!t) return void down.destroy();
    fwd.connections++;
    const up = net.connect(t.port, t.host);
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    down.pipe(up).pipe(down);
    const end = () => {
      down.destroy();
      up.destroy();
    };
    down.on('error', end);
    up.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const fwd: Forwarder = {
    address: '127.0.0.1',
    port,
    connections: 0,
    dropAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  return fwd;
}

/**
 * The gateway chain whose server_names is exactly [serverName]: its tcp_proxy cluster's first
 * endpoint.
 */
function chainTarget(
  gw: EnvoyLike | undefined,
  serverName: string,
): { host: string; port: number } | undefined {
  if (!gw) return undefined;
  const name = gw.names(TypeUrl.listener)[0];
  if (!name) return undefined;
  const listener: Json = JSON.parse(gw.json(TypeUrl.listener, name));
  const chain = listener.filterChains.find(
    (c: Json) =>
      c.filterChainMatch?.serverNames?.length === 1 &&
      c.filterChainMatch.serverNames[0] === serverName,
  );
  const cluster = chain?.filters.find((f: Json) => f.name === 'envoy.filters.network.tcp_proxy')
    ?.typedConfig?.cluster;
  if (!cluster) return undefined;
  const cla: Json = JSON.parse(gw.json(TypeUrl.endpoint, cluster) || 'null');
  const sa = cla?.endpoints?.[0]?.lbEndpoints?.[0]?.endpoint?.address?.socketAddress;
  return sa ? { host: sa.address, port: sa.portValue } : undefined;
}

const meshEntry = { Kind: 'mesh', Name: 'mesh', Peering: { PeerThroughMeshGateways: true } };
let a: MeshServer;
let b: MeshServer;
let fwdA: Forwarder;
let fwdB: Forwarder;
let gwA: EnvoyLike | undefined;
let gwB: EnvoyLike | undefined;
let serverNameA: string;

beforeAll(async () => {
  [a, b] = await Promise.all([
    startMeshServer({ datacenter: 'dc-a' }),
    startMeshServer({ datacenter: 'dc-b' }),
  ]);
  serverNameA = peeringServerName(a.server.ca.trustDomain, 'dc-a');
  fwdA = await forwarder(() => chainTarget(gwA, serverNameA));
  fwdB = await forwarder(() => chainTarget(gwB, serverNameA));
  await a.putConfig(meshEntry);
  await b.putConfig(meshEntry);
  const gw = (id: string, f: Forwarder) => ({
    ID: id,
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Address: f.address,
    Port: f.port,
    TaggedAddresses: {
      lan: { Address: f.address, Port: f.port },
      wan: { Address: f.address, Port: f.port },
    },
  });
  await a.register(gw('gw-a', fwdA));
  await b.register(gw('gw-b', fwdB));
  [gwA, gwB] = await Promise.all([a.connect('gw-a'), b.connect('gw-b')]);
  await gwA.until(
    (e) => chainTarget(e, serverNameA) !== undefined,
    "A's gateway chain for its own peering server name",
  );
}, 30_000);

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await Promise.all([fwdA?.close(), fwdB?.close()]);
});

describe('peering through mesh gateways', () => {
  it("A's gateway routes server.dc-a.peering.<tdA> to A's peering port", () => {
    expect(chainTarget(gwA, serverNameA)).toEqual({
      host: '127.0.0.1',
      port: a.server.peeringPort,
    });
  });

  it("A's token carries A's gateway WAN address; B establishes through it and both go ACTIVE, the stream passing through B's gateway", async () => {
    const token = await a.api<{ PeeringToken: string }>('POST', '/v1/peering/token', {
      PeerName: 'cluster-b',
    });
    expect(token.status).toBe(200);
    const parsed = parseToken(token.body.PeeringToken);
    expect(parsed.ok && parsed.value.ServerAddresses).toEqual([`127.0.0.1:${fwdA.port}`]);
    expect(parsed.ok && parsed.value.ServerName).toBe(serverNameA);

    const est = await b.api('POST', '/v1/peering/establish', {
      PeerName: 'cluster-a',
      PeeringToken: token.body.PeeringToken,
    });
    expect(est.status, JSON.stringify(est.body)).toBe(200);
    const active = (m: MeshServer, name: string) => async () =>
      (await m.api<{ State: string }>('GET', `/v1/peering/${name}`)).body?.State === 'ACTIVE';
    // B's gateway learns A's server name → A's server addresses (A's gateway) once B dialed.
    await gwB!.until(
      (e) => chainTarget(e, serverNameA) !== undefined,
      "B's gateway chain for A's server name",
    );
    expect(chainTarget(gwB, serverNameA)).toEqual({ host: '127.0.0.1', port: fwdA.port });
    await waitFor(active(b, 'cluster-a'), { timeoutMs: 15_000, intervalMs: 50, what: 'B ACTIVE' });
    await waitFor(active(a, 'cluster-b'), { timeoutMs: 15_000, intervalMs: 50, what: 'A ACTIVE' });
    expect(fwdA.connections, "connections through A's gateway").toBeGreaterThan(0);
    // B dials its own gateway first: once its chain exists, a redial goes B gateway → A gateway →
    // A.
    if (fwdB.connections === 0) fwdA.dropAll();
    await waitFor(() => fwdB.connections > 0, {
      timeoutMs: 15_000,
      intervalMs: 50,
      what: "a connection through B's gateway",
    });
    await waitFor(active(b, 'cluster-a'), {
      timeoutMs: 15_000,
      intervalMs: 50,
      what: 'B ACTIVE through its gateway',
    });
    await waitFor(active(a, 'cluster-b'), {
      timeoutMs: 15_000,
      intervalMs: 50,
      what: 'A ACTIVE through both gateways',
    });
  }, 60_000);
});
