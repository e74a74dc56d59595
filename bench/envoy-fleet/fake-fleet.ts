/**
 * The same benchmark with fake clients instead of Envoys, for comparison in the same run: a fresh
 * server with the same registrations, and one XdsProbe (src/probe: Delta ADS, subscribes as Envoy
 * does, ACKs every response) per `web` sidecar, each on its own HTTP/2 connection as an Envoy has,
 * in this process. The server's memory and CPU per client set the fake clients of bench:ads-fanout
 * beside the real Envoys under the same views and the same snapshot rebuilds.
 */
import * as grpc from '@grpc/grpc-js';
import { xdsTokenHeader } from '../../src/mesh/bootstrap.js';
import { xdsChannelCredentials } from '../../src/xds/tls.js';
import type { ClusterLoadAssignment } from '../../src/gen/envoy/config/endpoint/v3/endpoint.js';
import { AggregatedDiscoveryServiceClient } from '../../src/gen/envoy/service/discovery/v3/ads.js';
import { XdsProbe } from '../../src/probe/xds-probe.js';
import { TypeUrl } from '../../src/xds/types.js';
import { waitFor } from '../../test/helpers/wait.js';
import { cpuMs } from '../ads-fanout/stats.js';
import { type RoundOptions, tailMs } from './endpoint-rounds.js';
import type { ServerMemory, ServerUnderTest } from './server-process.js';
import { type AddressPorts, moveApiInstance, type Topology } from './topology.js';

export interface FakeRound {
  readonly round: number;
  readonly warmup: boolean;
  /** Per client, from the start of the API call until it held the new endpoint (ms). */
  readonly heldMs: readonly number[];
  /**
   * CPU from the API call until every client held the change, plus `tailMs`: the server, and this
   * process (the clients).
   */
  readonly cpu: { readonly server: number; readonly clients: number };
  readonly missing: number;
  /** xDS responses the server sent in the round (isthmus_xds_pushes_total). */
  readonly responses: number;
}

export interface FakeResult {
  readonly clients: number;
  readonly memBefore: ServerMemory;
  readonly memSynced: ServerMemory;
  /** Server CPU per second with every client connected and nothing changing (ms/s). */
  readonly idleCpuMsPerS: number;
  readonly rounds: readonly FakeRound[];
}

function ports(cla: ClusterLoadAssignment): number[] {
  return cla.endpoints.flatMap((l) =>
    l.lbEndpoints.flatMap((lb) => {
      if (lb.hostIdentifier?.$case !== 'endpoint') return [];
      const address = lb.hostIdentifier.value.address?.address;
      return address?.$case === 'socketAddress' &&
        address.value.portSpecifier?.$case === 'portValue'
        ? [address.value.portSpecifier.value]
        : [];
    }),
  );
}

function holdsEndpoint(probe: XdsProbe, port: number): boolean {
  for (const cla of probe.config.get(TypeUrl.endpoint)?.values() ?? [])
    if (ports(cla as unknown as ClusterLoadAssignment).includes(port)) return true;
  return false;
}

/** Holds both listeners, both secrets and `api`'s endpoints as registered now. */
function synced(probe: XdsProbe, topology: Topology): boolean {
  const count = (t: string) => probe.config.get(t)?.size ?? 0;
  return (
    count(TypeUrl.listener) >= 2 &&
    count(TypeUrl.secret) >= 2 &&
    topology.api.every((a) => holdsEndpoint(probe, a.sidecarPort))
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface FakeClient {
  readonly probe: XdsProbe;
  readonly client: AggregatedDiscoveryServiceClient;
}

/** One XdsProbe per sidecar, each authenticated with its proxy's token. */
async function connect(server: ServerUnderTest, topology: Topology): Promise<FakeClient[]> {
  const address = `127.0.0.1:${server.node.proc.xdsPort}`;
  const fakes: FakeClient[] = [];
  // TLS like the real fleet's Envoys (the server's default), so both sides pay for it.
  const { credentials, options } = xdsChannelCredentials(server.node.xdsTls);
  for (const id of topology.sidecars) {
    const md = new grpc.Metadata();
    md.set(xdsTokenHeader, await server.node.token(id));
    // A client of its own with a local subchannel pool: one HTTP/2 connection per proxy.
    const client = new AggregatedDiscoveryServiceClient(address, credentials, {
      ...options,
      'grpc.use_local_subchannel_pool': 1,
    });
    fakes.push({ client, probe: new XdsProbe(client, id, md) });
  }
  return fakes;
}

/** Moves one `api` endpoint and waits until every fake client holds it. */
async function fakeRound(
  server: ServerUnderTest,
  probes: readonly XdsProbe[],
  topology: Topology,
  port: number,
  round: number,
  boundMs: number,
): Promise<FakeRound> {
  const heldAt = new Array<number>(probes.length).fill(NaN);
  const pushes0 = await server.metric('isthmus_xds_pushes_total');
  const clients0 = process.cpuUsage();
  const cpu0 = await server.cpuMs();
  const t0 = Date.now();
  await moveApiInstance(server.node, topology, round % topology.api.length, port);
  await waitFor(
    () => {
      probes.forEach(
        (p, i) => Number.isNaN(heldAt[i]) && holdsEndpoint(p, port) && (heldAt[i] = Date.now()),
      );
      return heldAt.every((t) => !Number.isNaN(t));
    },
    {
      timeoutMs: boundMs,
      intervalMs: 2,
      what: `round ${round}: every fake client to hold the new endpoint`,
    },
  ).catch(() => undefined); // the ones missing are counted
  await sleep(tailMs);
  return {
    round,
    warmup: round === 1,
    heldMs: heldAt.map((t) => t - t0),
    cpu: { server: (await server.cpuMs()) - cpu0, clients: cpuMs(process.cpuUsage(clients0)) },
    responses: (await server.metric('isthmus_xds_pushes_total')) - pushes0,
    missing: heldAt.filter((t) => Number.isNaN(t)).length,
  };
}

/** Connects a fake client for every sidecar, measures, runs the endpoint rounds, disconnects. */
export async function fakeFleet(
  server: ServerUnderTest,
  topology: Topology,
  addresses: AddressPorts,
  opts: RoundOptions & { idleMs: number },
): Promise<FakeResult> {
  await server.settle();
  const memBefore = await server.memoryAfterGc();
  const fakes = await connect(server, topology);
  const probes = fakes.map((f) => f.probe);
  try {
    await waitFor(() => probes.every((p) => synced(p, topology)), {
      timeoutMs: 120_000,
      intervalMs: 50,
      what: 'every fake client to hold its whole view',
    });
    await server.settle();
    const idle0 = await server.cpuMs();
    await sleep(opts.idleMs);
    const idleCpuMsPerS = (((await server.cpuMs()) - idle0) / opts.idleMs) * 1000;
    const memSynced = await server.memoryAfterGc();
    const rounds: FakeRound[] = [];
    for (let round = 1; round <= opts.rounds + 1; round++) {
      await sleep(1_000);
      rounds.push(await fakeRound(server, probes, topology, addresses.take(), round, opts.boundMs));
    }
    return { clients: probes.length, memBefore, memSynced, idleCpuMsPerS, rounds };
  } finally {
    for (const f of fakes) {
      f.probe.close();
      f.client.close();
    }
  }
}
