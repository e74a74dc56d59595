/**
 * A worker process of bench:etcd-cluster (forked by fleet.ts through bin/run-ts.js): lean fake
 * Envoys on Delta ADS, one HTTP/2 connection each, that subscribe like Envoy (wildcard CDS, EDS
 * for the clusters received, wildcard LDS after the first EDS) and ACK every response at once.
 * Each starts on its home server; when its stream ends (its server died) it reconnects to the
 * next server of the list, as an Envoy whose bootstrap lists several servers does. It reports,
 * batched over IPC, when it first holds the marker cluster's endpoints (`synced`), when it ACKed
 * the EDS of round r (`acked:r`: the marker's first endpoint port is `markerPortBase + r`), and
 * when, after losing its stream, it ACKed the marker's endpoints on a new one (`resynced`).
 */
import * as grpc from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceService as Ads } from '../../src/gen/envoy/service/discovery/v3/ads.js';
import { TypeUrl } from '../../src/xds/types.js';
import { deltaAck, deltaRequest } from '../ads-fanout/proxies.js';
import { wallClockMs } from '../ads-fanout/protocol.js';
import { firstEndpointPort, parseResponse } from '../ads-fanout/wire-reader.js';

export type ToProxyWorker =
  | {
      readonly kind: 'connect';
      /** xDS addresses of every server; proxy i starts on `addresses[home[i]]`. */
      readonly addresses: readonly string[];
      readonly ids: readonly string[];
      readonly homes: readonly number[];
      /** EDS resources whose name starts with this are the marker cluster's. */
      readonly markerPrefix: string;
      readonly markerPortBase: number;
    }
  | { readonly kind: 'close' };

export type ProxyReportKey = 'ready' | 'synced' | 'resynced' | 'lost' | `acked:${number}`;

export type FromProxyWorker =
  | { readonly kind: 'report'; readonly key: ProxyReportKey; readonly times: readonly number[] }
  | { readonly kind: 'error'; readonly message: string };

const identity = (b: Buffer): Buffer => b;
const pending = new Map<ProxyReportKey, number[]>();
let timer: NodeJS.Timeout | undefined;

function report(key: ProxyReportKey, at: number): void {
  let times = pending.get(key);
  if (!times) pending.set(key, (times = []));
  times.push(at);
  timer ??= setTimeout(flush, 5);
}

function flush(): void {
  clearTimeout(timer);
  timer = undefined;
  for (const [key, times] of pending) process.send?.({ kind: 'report', key, times });
  pending.clear();
}

/** Reconnect pause after a stream ended, as Envoy's first backoff step is short. */
const reconnectMs = 250;

class FakeProxy {
  private client: grpc.Client | undefined;
  private stream: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;
  private server: number;
  private closing = false;
  private lostAt: number | undefined;
  private everSynced = false;
  private lastRound = 0;

  constructor(
    private readonly id: string,
    home: number,
    private readonly opts: Extract<ToProxyWorker, { kind: 'connect' }>,
  ) {
    this.server = home;
    this.open();
  }

  private open(): void {
    const address = this.opts.addresses[this.server]!;
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
    const stream = this.client.makeBidiStreamRequest<Buffer, Buffer>(
      Ads.deltaAggregatedResources.path,
      identity,
      identity,
    );
    this.stream = stream;
    const requested = new Set<string>();
    let sentNode = false;
    const send = (typeUrl: string, names: readonly string[], nonce: string) => {
      stream.write(deltaRequest(sentNode ? undefined : this.id, typeUrl, names, nonce));
      sentNode = true;
    };
    stream.on('data', (buf: Buffer) => {
      const res = parseResponse(buf, true);
      if (res.typeUrl === TypeUrl.cluster) {
        const fresh = res.resources.map((r) => r.name).filter((n) => !requested.has(n));
        for (const n of fresh) requested.add(n);
        if (fresh.length > 0) send(TypeUrl.endpoint, fresh, '');
      }
      stream.write(deltaAck(res.typeUrl, res.nonce));
      if (res.typeUrl !== TypeUrl.endpoint) return;
      if (!requested.has('lds')) {
        requested.add('lds');
        send(TypeUrl.listener, [], '');
      }
      const marker = res.resources.find((r) => r.name.startsWith(this.opts.markerPrefix));
      const port = marker && firstEndpointPort(buf, marker);
      if (port === undefined) return;
      this.onMarker(port - this.opts.markerPortBase, wallClockMs());
    });
    stream.on('error', () => undefined);
    // 'status' comes once per call however it ended (the server died: UNAVAILABLE).
    stream.on('status', () => this.onLost());
    send(TypeUrl.cluster, [], '');
  }

  private onMarker(round: number, at: number): void {
    if (!this.everSynced) {
      this.everSynced = true;
      report('synced', at);
    }
    if (this.lostAt !== undefined) {
      this.lostAt = undefined;
      report('resynced', at);
    }
    if (round > this.lastRound) {
      this.lastRound = round;
      report(`acked:${round}`, at);
    }
  }

  private onLost(): void {
    if (this.closing) return;
    if (this.lostAt === undefined) {
      this.lostAt = wallClockMs();
      report('lost', this.lostAt);
    }
    this.client?.close();
    this.server = (this.server + 1) % this.opts.addresses.length;
    setTimeout(() => this.closing || this.open(), reconnectMs);
  }

  close(): void {
    this.closing = true;
    this.stream?.cancel();
    this.client?.close();
  }
}

let proxies: FakeProxy[] = [];

process.on('message', (msg: ToProxyWorker) => {
  try {
    if (msg.kind === 'connect') {
      proxies = msg.ids.map((id, i) => new FakeProxy(id, msg.homes[i]!, msg));
      report('ready', wallClockMs());
    } else {
      for (const p of proxies) p.close();
      proxies = [];
      flush();
      setTimeout(() => process.exit(0), 50);
    }
  } catch (err) {
    process.send?.({ kind: 'error', message: (err as Error).message });
  }
});
