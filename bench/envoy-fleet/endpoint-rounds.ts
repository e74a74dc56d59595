/**
 * Endpoint change → every Envoy's `/clusters` shows it. Each round moves one `api` instance's
 * sidecar to a port no round used before (a re-registration through the HTTP API) and polls every
 * Envoy's `/clusters` until the new address is one of its hosts, at once when the Envoy logs that
 * it accepted a ClusterLoadAssignment (poll.ts). That log line's time is Envoy's apply time.
 */
import type { EnvoyProcess } from '../../test/envoy/harness.js';
import { acceptedHints, adminGet } from './admin.js';
import { acceptedAt, type CpuSpent, cpuWindow } from './fleet.js';
import { pollFleet, sweepGapMs } from './poll.js';
import type { ServerUnderTest } from './server-process.js';
import { type AddressPorts, moveApiInstance, type Topology } from './topology.js';

export interface ChangeRound {
  readonly round: number;
  readonly warmup: boolean;
  /** The HTTP API call that re-registered the instance (ms). */
  readonly registerMs: number;
  /**
   * Per Envoy, from the start of the API call (ms): its config log's "accepted", and the poll that
   * first showed it.
   */
  readonly appliedMs: readonly number[];
  readonly visibleMs: readonly number[];
  /** Admin requests the poller made in the round. */
  readonly requests: number;
  /** xDS responses the server sent in the round (isthmus_xds_pushes_total). */
  readonly responses: number;
  /** CPU from the API call until every Envoy showed the change, plus `tailMs` for the last ACKs. */
  readonly cpu: CpuSpent;
  readonly serverRss: number;
  /** Names of the Envoys that did not show the change within the bound. */
  readonly missing: readonly string[];
}

export interface RoundOptions {
  readonly rounds: number;
  readonly boundMs: number;
  readonly pollConcurrency: number;
}

/**
 * After the last Envoy showed a change, the server still reads its ACKs; this much is counted too.
 */
export const tailMs = 300;
const settleMs = 1_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * True when some cluster of the Envoy has the host `127.0.0.1:<port>` (`/clusters` text:
 * `<cluster>::<host>::<stat>::<value>`).
 */
export async function showsEndpoint(envoy: EnvoyProcess, port: number): Promise<boolean> {
  return (await adminGet(envoy, '/clusters')).includes(`::127.0.0.1:${port}::`);
}

export async function endpointRounds(
  server: ServerUnderTest,
  envoys: readonly EnvoyProcess[],
  topology: Topology,
  addresses: AddressPorts,
  opts: RoundOptions,
): Promise<ChangeRound[]> {
  const out: ChangeRound[] = [];
  for (let round = 1; round <= opts.rounds + 1; round++) {
    await sleep(settleMs);
    const port = addresses.take();
    const pushes0 = await server.metric('isthmus_xds_pushes_total');
    const cpuSpent = await cpuWindow(server, envoys);
    const t0 = Date.now();
    await moveApiInstance(server.node, topology, round % topology.api.length, port);
    const registerMs = Date.now() - t0;
    const poll = await pollFleet(envoys.length, (i) => showsEndpoint(envoys[i]!, port), {
      concurrency: opts.pollConcurrency,
      deadline: t0 + opts.boundMs,
      sweepGapMs: sweepGapMs(envoys.length),
      hints: acceptedHints(envoys, 'ClusterLoadAssignment'),
    });
    await sleep(tailMs);
    const cpu = await cpuSpent();
    const responses = (await server.metric('isthmus_xds_pushes_total')) - pushes0;
    out.push({
      round,
      warmup: round === 1,
      registerMs,
      appliedMs: envoys.map(
        (e, i) => acceptedAt(e.log(), 'ClusterLoadAssignment', t0, poll.seenAt[i]!) - t0,
      ),
      visibleMs: poll.seenAt.map((t) => t - t0),
      requests: poll.requests,
      responses,
      cpu,
      serverRss: server.rss(),
      missing: poll.missing.map((i) => envoys[i]!.name),
    });
  }
  return out;
}
