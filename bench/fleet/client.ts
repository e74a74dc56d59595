/**
 * A fake Envoy on Delta ADS that survives its stream ending. It subscribes like Envoy (wildcard
 * CDS, EDS for the clusters received, wildcard LDS after the first CDS response), ACKs every
 * response at once, keeps the version of every resource it holds, and when its stream ends (the
 * server restarted, or the benchmark asks) opens a new one whose first request of each type names
 * what it holds in `initial_resource_versions`, as Envoy does (docs/architecture.md §7 rule 10).
 * It counts what it receives, so a benchmark can tell what a reconnect made the server re-send.
 */
import type * as grpc from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceService as Ads } from '../../src/gen/envoy/service/discovery/v3/ads.js';
import { DeltaDiscoveryRequest } from '../../src/gen/envoy/service/discovery/v3/discovery.js';
import { TypeUrl } from '../../src/xds/types.js';
import { deltaAck } from '../ads-fanout/proxies.js';
import { parseResponse } from '../ads-fanout/wire-reader.js';
import type { HeldState } from './protocol.js';

const identity = (b: Buffer): Buffer => b;

/** What every proxy of a worker adds to (see Counters in protocol.ts). */
export class Tally {
  resources = 0;
  bytes = 0;
  responses: Record<string, number> = {};
  reconnects = 0;
  streamErrors = 0;
  /** Responses that arrived on a stream after we cancelled it. */
  staleData = 0;
  /** The last stream error's code and message (what a failing reconnect sees). */
  lastError = '';
}

export interface ProxyEnv {
  readonly tally: Tally;
  /** A stream broke in a way a proxy does not recover from (an unreadable response). */
  fail(message: string): void;
}

/** Envoy's reconnect backoff: fully jittered, from 500 ms doubling up to 4 s here. */
const backoffBaseMs = 500;
const backoffMaxMs = 4_000;

export class FleetProxy {
  /** type URL → name → version held. */
  private readonly held = new Map<string, Map<string, string>>();
  /** Names of the EDS subscription (the clusters held). */
  private readonly eds = new Set<string>();
  private listenersRequested = false;
  private stream: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;
  /** Numbers the streams: events of a stream we ended ourselves are ignored. */
  private generation = 0;
  private sentNode = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The current stream has received a response. */
  answered = false;

  constructor(
    readonly id: string,
    private readonly client: grpc.Client,
    private readonly env: ProxyEnv,
  ) {}

  /** True while the current stream is open and has been answered. */
  get connected(): boolean {
    return this.stream !== undefined && this.answered;
  }

  /** Opens a stream; every type held or requested before is requested again with its versions. */
  open(): void {
    if (this.stopped) return;
    const gen = ++this.generation;
    this.answered = false;
    this.sentNode = false;
    const stream = this.client.makeBidiStreamRequest<Buffer, Buffer>(
      Ads.deltaAggregatedResources.path,
      identity,
      identity,
    );
    this.stream = stream;
    stream.on('data', (b: Buffer) => {
      if (gen === this.generation) this.onResponse(b);
      else {
        // A stream we cancelled is still delivering: grpc-js let the cancel go unsent.
        this.env.tally.staleData++;
        stream.cancel();
      }
    });
    stream.on('error', (err: grpc.ServiceError) => {
      if (gen !== this.generation || this.stopped) return;
      this.env.tally.streamErrors++;
      this.env.tally.lastError = `${err.code} ${err.details}`;
      this.stream = undefined;
      this.retry(err);
    });
    stream.on('end', () => {
      if (gen !== this.generation || this.stopped || !this.stream) return;
      this.stream = undefined;
      this.retry(undefined);
    });
    this.request(TypeUrl.cluster, []);
    if (this.eds.size > 0) this.request(TypeUrl.endpoint, [...this.eds]);
    if (this.listenersRequested) this.request(TypeUrl.listener, []);
  }

  /** Ends the current stream and opens a new one at once (a reconnect the client chose). */
  reconnect(): void {
    if (this.stopped) return;
    this.generation++;
    this.stream?.cancel();
    this.stream = undefined;
    this.env.tally.reconnects++;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.generation++;
    this.stream?.cancel();
    this.stream = undefined;
  }

  /** What the proxy holds, per type. */
  state(): HeldState {
    const types: Record<string, [string, string][]> = {};
    for (const [typeUrl, names] of this.held) types[typeUrl] = [...names];
    return { id: this.id, types };
  }

  private retry(_err: grpc.ServiceError | undefined): void {
    clearTimeout(this.retryTimer);
    const ceiling = Math.min(backoffMaxMs, backoffBaseMs * 2 ** this.failures++);
    this.retryTimer = setTimeout(() => {
      this.env.tally.reconnects++;
      this.open();
    }, Math.random() * ceiling);
  }

  /** A subscription request; the first of a stream carries the node and, per type, what is held. */
  private request(typeUrl: string, subscribe: readonly string[], unsubscribe: string[] = []): void {
    const first = !this.sentNode;
    this.sentNode = true;
    const held = this.held.get(typeUrl);
    const msg = DeltaDiscoveryRequest.fromPartial({
      ...(first ? { node: { id: this.id, cluster: 'bench' } } : {}),
      typeUrl,
      resourceNamesSubscribe: [...subscribe],
      resourceNamesUnsubscribe: unsubscribe,
      initialResourceVersions: held && this.isFirstOfType(typeUrl) ? Object.fromEntries(held) : {},
    });
    this.stream?.write(Buffer.from(DeltaDiscoveryRequest.encode(msg).finish()));
  }

  /** Types requested on the current stream (initial versions go with the first request of each). */
  private requestedOnStream = new Map<number, Set<string>>();
  private isFirstOfType(typeUrl: string): boolean {
    let types = this.requestedOnStream.get(this.generation);
    if (!types) {
      this.requestedOnStream.clear();
      this.requestedOnStream.set(this.generation, (types = new Set()));
    }
    if (types.has(typeUrl)) return false;
    types.add(typeUrl);
    return true;
  }

  private onResponse(buf: Buffer): void {
    let res: ReturnType<typeof parseResponse>;
    try {
      res = parseResponse(buf, true);
    } catch (err) {
      this.env.fail(`${this.id}: unreadable response: ${(err as Error).message}`);
      return;
    }
    this.answered = true;
    this.failures = 0;
    const tally = this.env.tally;
    tally.bytes += buf.length;
    tally.resources += res.resources.length;
    tally.responses[res.typeUrl] = (tally.responses[res.typeUrl] ?? 0) + 1;
    let names = this.held.get(res.typeUrl);
    if (!names) this.held.set(res.typeUrl, (names = new Map()));
    for (const r of res.resources) names.set(r.name, r.version);
    for (const name of res.removed) names.delete(name);
    if (res.typeUrl === TypeUrl.cluster) this.followClusters(names);
    this.stream?.write(deltaAck(res.typeUrl, res.nonce));
  }

  /**
   * Envoy subscribes to the endpoints of new clusters and drops those of removed ones, and asks
   * for listeners once its clusters are initialised.
   */
  private followClusters(clusters: ReadonlyMap<string, string>): void {
    const added = [...clusters.keys()].filter((n) => !this.eds.has(n));
    const removed = [...this.eds].filter((n) => !clusters.has(n));
    for (const n of added) this.eds.add(n);
    for (const n of removed) {
      this.eds.delete(n);
      this.held.get(TypeUrl.endpoint)?.delete(n);
    }
    if (added.length > 0 || removed.length > 0) this.request(TypeUrl.endpoint, added, removed);
    if (!this.listenersRequested) {
      this.listenersRequested = true;
      this.request(TypeUrl.listener, []);
    }
  }
}
