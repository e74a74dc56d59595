/**
 * A fake Envoy: the ts-proto generated ADS client speaking SotW or Delta like Envoy does, with
 * helpers to ACK/NACK. Every resource it receives is checked against Envoy's validate.rules; a
 * violation fails the test at `next()`.
 */
import * as grpc from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceClient } from '../../src/gen/envoy/service/discovery/v3/ads.js';
import {
  DeltaDiscoveryRequest,
  DiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryResponse,
} from '../../src/gen/envoy/service/discovery/v3/discovery.js';
import { Status } from '../../src/gen/google/rpc/status.js';
import { unpackAny } from '../../src/xds/any.js';
import '../../src/xds/registry.js';
import { validateAny } from './pgv.js';

export interface ReceivedResource {
  readonly name: string;
  readonly version: string;
  readonly message: Record<string, unknown>;
}

export interface Received<Raw> {
  readonly raw: Raw;
  readonly typeUrl: string;
  readonly nonce: string;
  readonly versionInfo: string;
  readonly resources: readonly ReceivedResource[];
  readonly removed: readonly string[];
}

const nameOf = (m: Record<string, unknown>) => String(m['name'] ?? m['clusterName'] ?? '');

function decodeAny(any: { typeUrl: string; value: Uint8Array }): Record<string, unknown> {
  const violations = validateAny(any);
  if (violations.length > 0) throw new Error(`resource violates Envoy validate.rules:\n${violations.join('\n')}`);
  const message = unpackAny(any as never);
  if (!message) throw new Error(`unknown resource type ${any.typeUrl}`);
  return message as Record<string, unknown>;
}

type Stream<Req, Res> = grpc.ClientDuplexStream<Req, Res>;

abstract class FakeEnvoyBase<Req, Res> {
  protected readonly queue: (Received<Res> | Error)[] = [];
  private waiter: ((r: Received<Res> | Error) => void) | undefined;
  readonly ended: Promise<grpc.StatusObject>;
  /** Version the client holds per type and name (applied on ACK). */
  readonly held = new Map<string, Map<string, string>>();

  constructor(protected readonly stream: Stream<Req, Res>, readonly nodeId: string) {
    stream.on('data', (res: Res) => {
      let item: Received<Res> | Error;
      try {
        item = this.decode(res);
      } catch (err) {
        item = err as Error;
      }
      this.push(item);
    });
    this.ended = new Promise((resolve) => {
      stream.on('status', (s: grpc.StatusObject) => resolve(s));
      stream.on('error', () => undefined);
    });
  }

  protected abstract decode(res: Res): Received<Res>;

  private push(item: Received<Res> | Error): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(item);
    } else this.queue.push(item);
  }

  /** The next response, or an error at the deadline. */
  async next(timeoutMs = 5_000): Promise<Received<Res>> {
    const item =
      this.queue.shift() ??
      (await new Promise<Received<Res> | Error>((resolve) => {
        const timer = setTimeout(() => {
          this.waiter = undefined;
          resolve(new Error(`fake envoy ${this.nodeId}: no response within ${timeoutMs} ms`));
        }, timeoutMs);
        this.waiter = (r) => {
          clearTimeout(timer);
          resolve(r);
        };
      }));
    if (item instanceof Error) throw item;
    return item;
  }

  /** True when nothing arrives within `ms` (use only beside a positive ordering check). */
  async quietFor(ms: number): Promise<boolean> {
    if (this.queue.length > 0) return false;
    try {
      await this.next(ms);
      return false;
    } catch {
      return true;
    }
  }

  protected apply(r: Received<Res>): void {
    let m = this.held.get(r.typeUrl);
    if (!m) this.held.set(r.typeUrl, (m = new Map()));
    for (const res of r.resources) m.set(res.name, res.version);
    for (const name of r.removed) m.delete(name);
  }

  close(): void {
    this.stream.cancel();
  }
}

export class SotwEnvoy extends FakeEnvoyBase<DiscoveryRequest, DiscoveryResponse> {
  private readonly names = new Map<string, string[]>();
  private readonly acked = new Map<string, string>();
  private first = true;
  private lastSeenNonce = '';
  private readonly nonceByType = new Map<string, string>();

  protected decode(raw: DiscoveryResponse): Received<DiscoveryResponse> {
    this.lastSeenNonce = raw.nonce;
    this.nonceByType.set(raw.typeUrl, raw.nonce);
    const resources = raw.resources.map((any) => {
      const message = decodeAny(any);
      return { name: nameOf(message), version: raw.versionInfo, message };
    });
    return { raw, typeUrl: raw.typeUrl, nonce: raw.nonce, versionInfo: raw.versionInfo, resources, removed: [] };
  }

  request(typeUrl: string, names: readonly string[], opts: { versionInfo?: string; nonce?: string; errorDetail?: string; withNode?: boolean } = {}): void {
    this.names.set(typeUrl, [...names]);
    const withNode = opts.withNode ?? this.first;
    this.first = false;
    this.stream.write(DiscoveryRequest.fromPartial({
      versionInfo: opts.versionInfo ?? this.acked.get(typeUrl) ?? '',
      node: withNode ? { id: this.nodeId, cluster: 'test', userAgentName: 'fake-envoy' } : undefined,
      resourceNames: [...names],
      typeUrl,
      responseNonce: opts.nonce ?? '',
      errorDetail: opts.errorDetail ? Status.fromPartial({ code: 3, message: opts.errorDetail }) : undefined,
    }));
  }

  ack(r: Received<DiscoveryResponse>, names?: readonly string[]): void {
    this.acked.set(r.typeUrl, r.versionInfo);
    if (r.typeUrl.endsWith('Cluster') || r.typeUrl.endsWith('Listener')) this.held.set(r.typeUrl, new Map());
    this.apply(r);
    this.request(r.typeUrl, names ?? this.names.get(r.typeUrl) ?? [], { versionInfo: r.versionInfo, nonce: r.nonce });
  }

  /** The nonce of the newest response of a type (a SotW subscription change carries it). */
  lastNonceOf(typeUrl: string): string {
    return this.nonceByType.get(typeUrl) ?? '';
  }

  /** The nonce of the newest response received (SotW requests carry it). */
  lastNonce(): string {
    return this.lastSeenNonce;
  }

  nack(r: Received<DiscoveryResponse>, message: string): void {
    this.request(r.typeUrl, this.names.get(r.typeUrl) ?? [], { nonce: r.nonce, errorDetail: message });
  }
}

export class DeltaEnvoy extends FakeEnvoyBase<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
  private first = true;

  protected decode(raw: DeltaDiscoveryResponse): Received<DeltaDiscoveryResponse> {
    const resources = raw.resources.map((r) => {
      if (!r.resource) throw new Error(`delta resource ${r.name} has no body`);
      const message = decodeAny(r.resource);
      if (nameOf(message) !== r.name) throw new Error(`delta resource name ${r.name} != ${nameOf(message)}`);
      return { name: r.name, version: r.version, message };
    });
    return { raw, typeUrl: raw.typeUrl, nonce: raw.nonce, versionInfo: raw.systemVersionInfo, resources, removed: raw.removedResources };
  }

  send(
    typeUrl: string,
    opts: { subscribe?: readonly string[]; unsubscribe?: readonly string[]; nonce?: string; errorDetail?: string; initial?: Record<string, string>; withNode?: boolean } = {},
  ): void {
    const withNode = opts.withNode ?? this.first;
    this.first = false;
    this.stream.write(DeltaDiscoveryRequest.fromPartial({
      node: withNode ? { id: this.nodeId, cluster: 'test', userAgentName: 'fake-envoy' } : undefined,
      typeUrl,
      resourceNamesSubscribe: [...(opts.subscribe ?? [])],
      resourceNamesUnsubscribe: [...(opts.unsubscribe ?? [])],
      initialResourceVersions: opts.initial ?? {},
      responseNonce: opts.nonce ?? '',
      errorDetail: opts.errorDetail ? Status.fromPartial({ code: 3, message: opts.errorDetail }) : undefined,
    }));
  }

  ack(r: Received<DeltaDiscoveryResponse>): void {
    this.apply(r);
    this.send(r.typeUrl, { nonce: r.nonce });
  }

  nack(r: Received<DeltaDiscoveryResponse>, message: string): void {
    this.send(r.typeUrl, { nonce: r.nonce, errorDetail: message });
  }
}

export function adsClient(address: string): AggregatedDiscoveryServiceClient {
  return new AggregatedDiscoveryServiceClient(address, grpc.credentials.createInsecure());
}

export function connectSotw(client: AggregatedDiscoveryServiceClient, nodeId: string, metadata = new grpc.Metadata()): SotwEnvoy {
  return new SotwEnvoy(client.streamAggregatedResources(metadata), nodeId);
}

export function connectDelta(client: AggregatedDiscoveryServiceClient, nodeId: string, metadata = new grpc.Metadata()): DeltaEnvoy {
  return new DeltaEnvoy(client.deltaAggregatedResources(metadata), nodeId);
}
