/**
 * The push path under test: an XdsServer in this process (so process.cpuUsage() and RSS are the
 * server's alone), N proxies in the client workers, one endpoint change per round published to
 * every proxy.
 */
import { performance } from 'node:perf_hooks';
import type * as grpc from '@grpc/grpc-js';
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { XdsServer } from '../../src/xds/server.js';
import { TypeUrl } from '../../src/xds/types.js';
import { encodeDeltaResponse, encodeSotwResponse } from '../../src/xds/wire.js';
import { stateVersion } from '../../src/xds/cache/type-entries.js';
import { entriesOf } from '../../src/xds/cache/proxy-view.js';
import { Fixture } from './fixture.js';
import { markerCluster, wallClockMs, type Api, type ConnectionMode } from './protocol.js';
import {
  collectGarbage,
  cpuMs,
  max,
  median,
  sampleMemory,
  until,
  type MemorySample,
} from './stats.js';
import type { WorkerPool } from './workers.js';
import type { RoundProfiler } from './profile.js';
import type { ClientKind } from '../shared/bidi-client.js';

export interface RunOptions {
  readonly clients: number;
  readonly workers: number;
  readonly rounds: number;
  readonly api: Api;
  readonly conn: ConnectionMode;
  /** The fake proxies' gRPC client (and so the raw reference's): bench/shared/bidi-client.ts. */
  readonly client: ClientKind;
  /** Write CPU profiles of the server during each push round, named after this prefix. */
  readonly profile: string | undefined;
}

export interface XdsRound {
  readonly round: number;
  /** The first round warms up the JIT and is left out of the summary. */
  readonly warmup: boolean;
  /** The publish loop itself: updateProxyResources for every proxy (ms). */
  readonly publishMs: number;
  /** From the start of publishing until the server wrote its first / last response (ms). */
  readonly firstWriteMs: number;
  readonly lastWriteMs: number;
  /** From the start of publishing to the median / last client having ACKed (client clocks, ms). */
  readonly p50AckMs: number;
  readonly lastAckMs: number;
  /** From the start of publishing until the server had processed the last ACK (ms). */
  readonly serverAckedMs: number;
  /** Server CPU from the start of publishing until the last ACK was processed (ms). */
  readonly cpuMs: number;
  /** CPU the client workers used meanwhile, summed (ms). */
  readonly clientCpuMs: number;
}

export interface XdsSetup {
  /** From the first connection until every proxy had received and ACKed its whole view (ms). */
  readonly syncMs: number;
  readonly memBefore: MemorySample;
  readonly memViews: MemorySample;
  readonly memSynced: MemorySample;
  /** The bytes of one round's EDS response as a stream writes them (for the raw reference). */
  readonly edsResponse: Buffer;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Responses the server wrote and has not yet seen ACKed, over all streams and types. */
function pendingAcks(server: XdsServer): number {
  return server.pendingResponses;
}

/** When the server wrote its first and last response, and processed its last ACK, in a round. */
interface ServerClock {
  pushes: number;
  firstPushAt: number;
  lastPushAt: number;
  acks: number;
  lastAckAt: number;
}

/**
 * The server counts isthmus_xds_pushes_total once per response written and observes
 * isthmus_xds_convergence_seconds once per ACK of a proxy's newest view. Wrapping those two calls
 * times the server's side of a round without polling its sessions.
 */
function serverClock(metrics: Metrics): ServerClock {
  const clock: ServerClock = { pushes: 0, firstPushAt: 0, lastPushAt: 0, acks: 0, lastAckAt: 0 };
  const counter = metrics.xdsPushes;
  const inc = counter.inc.bind(counter);
  counter.inc = ((...args: Parameters<typeof inc>) => {
    clock.lastPushAt = wallClockMs();
    if (clock.pushes++ === 0) clock.firstPushAt = clock.lastPushAt;
    return inc(...args);
  }) as typeof counter.inc;
  const histogram = metrics.xdsConvergence;
  const observe = histogram.observe.bind(histogram);
  histogram.observe = ((...args: Parameters<typeof observe>) => {
    clock.acks++;
    clock.lastAckAt = wallClockMs();
    return observe(...args);
  }) as typeof histogram.observe;
  return clock;
}

/**
 * Proxy i goes to worker i mod W. Rounds publish proxy-0, proxy-1, … in order, so responses go to
 * the workers in turn, as the raw reference's writes do (its streams are in the order they
 * opened, which interleaves the workers).
 */
function assign(pool: WorkerPool, clients: number): number[][] {
  const ids: number[][] = Array.from({ length: pool.size }, () => []);
  for (let i = 0; i < clients; i++) ids[i % pool.size]!.push(i);
  return ids;
}

/**
 * The server with N synced proxies. `open` publishes every proxy's view, connects the proxies and
 * waits until all have ACKed it; `round` publishes one endpoint change to all of them.
 */
export class XdsBench {
  private readonly metrics = new Metrics();
  private readonly cache = new XdsCache(this.metrics);
  // Plaintext, as the raw reference (raw-phase.ts): the comparison is of the xDS layer on the
  // same transport, and TLS would add the same cost to both sides.
  private readonly server = new XdsServer({
    logger: silentLogger(),
    metrics: this.metrics,
    cache: this.cache,
  });
  private readonly clock = serverClock(this.metrics);
  private readonly fixture = new Fixture(this.cache);
  private readonly nodeIds: readonly string[];

  constructor(
    private readonly pool: WorkerPool,
    private readonly opts: RunOptions,
  ) {
    this.nodeIds = Array.from({ length: opts.clients }, (_, i) => `proxy-${i}`);
    for (let r = 0; r <= opts.rounds + 1; r++) this.fixture.markerEndpoints(r); // builder work, not push path
  }

  /**
   * The XdsServer's own gRPC server (a private field: nothing outside a benchmark should add a
   * service to it). The raw reference serves on it, so its streams share the proxies' connections.
   */
  get grpcServer(): grpc.Server {
    return (this.server as unknown as { readonly server: grpc.Server }).server;
  }

  /**
   * Memory is sampled before anything is published, after the views, and after all proxies synced.
   */
  async open(): Promise<XdsSetup> {
    const address = `127.0.0.1:${await this.server.listen('127.0.0.1:0')}`;
    const memBefore = await sampleMemory();
    for (const id of this.nodeIds) this.cache.setProxyResources(id, this.fixture.view(0));
    const memViews = await sampleMemory();
    const start = wallClockMs();
    const { api, conn, client, clients } = this.opts;
    assign(this.pool, clients).forEach((ids, w) =>
      this.pool.send(w, {
        kind: 'connect-xds',
        address,
        api,
        conn,
        client,
        ids,
        expected: this.fixture.expected,
      }),
    );
    const synced = await this.pool.gather('synced', clients, 120_000);
    await until(() => pendingAcks(this.server) === 0, 'the server to process every initial ACK');
    const syncMs = max(synced) - start;
    return {
      syncMs,
      memBefore,
      memViews,
      memSynced: await sampleMemory(),
      edsResponse: oneEdsResponse(this.cache, api),
    };
  }

  async round(round: number, profiler: RoundProfiler): Promise<XdsRound> {
    collectGarbage();
    await sleep(100);
    // An endpoint move reaches the cache as SnapshotPublisher publishes it: the one changed
    // ClusterLoadAssignment upserted into each proxy's view (setProxyResources is the first publish).
    const change = { upsert: [this.fixture.markerEndpoints(round)] };
    Object.assign(this.clock, { pushes: 0, acks: 0 });
    const clientCpu0 = await this.pool.cpuMs();
    await profiler.begin();
    const cpu0 = process.cpuUsage();
    const start = wallClockMs();
    const t0 = performance.now();
    for (const id of this.nodeIds) this.cache.updateProxyResources(id, change);
    const publishMs = performance.now() - t0;
    const acks = await this.pool.gather(`acked:${round}`, this.nodeIds.length);
    const n = this.nodeIds.length;
    // The ACK count is cheap to poll; every session's state is walked once it is complete (or every
    // 20 ms, should the count ever miss an ACK), not every millisecond beside the ACKs being read.
    let polls = 0;
    await until(
      () => (this.clock.acks >= n || ++polls % 20 === 0) && pendingAcks(this.server) === 0,
      `the server to process round ${round}'s ACKs`,
    );
    const cpu = cpuMs(process.cpuUsage(cpu0));
    await profiler.end(round);
    const clientCpuMs = (await this.pool.cpuMs()) - clientCpu0;
    const rel = acks.map((t) => t - start);
    // The clock's figures are n/a if the server stops counting pushes / ACKs the way serverClock
    // expects.
    const c = this.clock;
    const pushed = c.pushes >= n;
    return {
      round,
      warmup: round === 1,
      publishMs,
      firstWriteMs: pushed ? c.firstPushAt - start : NaN,
      lastWriteMs: pushed ? c.lastPushAt - start : NaN,
      p50AckMs: median(rel),
      lastAckMs: max(rel),
      serverAckedMs: c.acks >= n ? c.lastAckAt - start : NaN,
      cpuMs: cpu,
      clientCpuMs,
    };
  }

  async close(): Promise<void> {
    this.pool.broadcast({ kind: 'close-xds' });
    await this.pool.gather('closed', this.pool.size);
    this.pool.reset('closed');
    await until(() => this.server.connectedCount === 0, 'the xDS streams to close', 30_000, 10);
    await this.server.shutdown(1_000);
  }

  /** Stops the server without waiting for clients (error paths). */
  async abort(): Promise<void> {
    await this.server.shutdown(0);
  }
}

/** A round's EDS response exactly as a session assembles it from the cached entry. */
function oneEdsResponse(cache: XdsCache, api: Api): Buffer {
  const view = cache.view('proxy-0')!;
  const all = entriesOf(view, TypeUrl.endpoint);
  const entry = all.get(markerCluster)!;
  const nonce = '42';
  if (api === 'delta') return encodeDeltaResponse(TypeUrl.endpoint, nonce, [entry.deltaField], []);
  const desired = [...all.keys()].sort().map((n) => all.get(n)!);
  return encodeSotwResponse(stateVersion(desired), TypeUrl.endpoint, nonce, [entry.sotwField]);
}
