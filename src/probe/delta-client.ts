/**
 * An ADS client speaking like Envoy (the ts-proto generated client): a stream base that decodes,
 * queues and tracks what was ACKed, and the Delta variant. Each received resource can be checked by
 * an optional `validate` hook (tests pass Envoy's validate.rules); a rejected resource surfaces as
 * an error from `next()`.
 */
import * as grpc from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceClient } from '../gen/envoy/service/discovery/v3/ads.js';
import {
  DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
} from '../gen/envoy/service/discovery/v3/discovery.js';
import { Status } from '../gen/google/rpc/status.js';
import { unpackAny } from '../proto-any.js';
import '../xds/registry.js';
import { type XdsClientTls, xdsChannelCredentials } from '../xds/tls.js';

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

export interface EncodedAny {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

export interface ClientOptions {
  /** Problems with a received resource (empty when it is acceptable). */
  readonly validate?: (any: EncodedAny) => readonly string[];
  /** `node.cluster` and `node.user_agent_name` of the first request. */
  readonly cluster?: string;
  readonly userAgentName?: string;
}

export const nameOf = (m: Record<string, unknown>) => String(m.name ?? m.clusterName ?? '');

/** `next()` found nothing within its deadline (the stream may still be healthy). */
export class NoResponseError extends Error {}

type Stream<Req, Res> = grpc.ClientDuplexStream<Req, Res>;

export abstract class XdsStreamClient<Req, Res> {
  protected readonly queue: (Received<Res> | Error)[] = [];
  private waiter: ((r: Received<Res> | Error) => void) | undefined;
  readonly ended: Promise<grpc.StatusObject>;
  /** Version the client holds per type and name (applied on ACK). */
  readonly held = new Map<string, Map<string, string>>();

  constructor(
    protected readonly stream: Stream<Req, Res>,
    readonly nodeId: string,
    protected readonly options: ClientOptions = {},
  ) {
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

  protected node(withNode: boolean) {
    return withNode
      ? {
          id: this.nodeId,
          cluster: this.options.cluster ?? 'isthmus-probe',
          userAgentName: this.options.userAgentName ?? 'isthmus-probe',
        }
      : undefined;
  }

  protected decodeAny(any: EncodedAny): Record<string, unknown> {
    const violations = this.options.validate?.(any) ?? [];
    if (violations.length > 0)
      throw new Error(`resource violates Envoy validate.rules:\n${violations.join('\n')}`);
    const message = unpackAny(any as never);
    if (!message) throw new Error(`unknown resource type ${any.typeUrl}`);
    return message as Record<string, unknown>;
  }

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
          resolve(
            new NoResponseError(`xds client ${this.nodeId}: no response within ${timeoutMs} ms`),
          );
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

export interface DeltaSendOptions {
  readonly subscribe?: readonly string[];
  readonly unsubscribe?: readonly string[];
  readonly nonce?: string;
  readonly errorDetail?: string;
  readonly initial?: Record<string, string>;
  readonly withNode?: boolean;
}

export class DeltaClient extends XdsStreamClient<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
  private first = true;

  protected decode(raw: DeltaDiscoveryResponse): Received<DeltaDiscoveryResponse> {
    const resources = raw.resources.map((r) => {
      if (!r.resource) throw new Error(`delta resource ${r.name} has no body`);
      const message = this.decodeAny(r.resource);
      if (nameOf(message) !== r.name)
        throw new Error(`delta resource name ${r.name} != ${nameOf(message)}`);
      return { name: r.name, version: r.version, message };
    });
    return {
      raw,
      typeUrl: raw.typeUrl,
      nonce: raw.nonce,
      versionInfo: raw.systemVersionInfo,
      resources,
      removed: raw.removedResources,
    };
  }

  send(typeUrl: string, opts: DeltaSendOptions = {}): void {
    const withNode = opts.withNode ?? this.first;
    this.first = false;
    this.stream.write(
      DeltaDiscoveryRequest.fromPartial({
        node: this.node(withNode),
        typeUrl,
        resourceNamesSubscribe: [...(opts.subscribe ?? [])],
        resourceNamesUnsubscribe: [...(opts.unsubscribe ?? [])],
        initialResourceVersions: opts.initial ?? {},
        responseNonce: opts.nonce ?? '',
        errorDetail: opts.errorDetail
          ? Status.fromPartial({ code: 3, message: opts.errorDetail })
          : undefined,
      }),
    );
  }

  ack(r: Received<DeltaDiscoveryResponse>): void {
    this.apply(r);
    this.send(r.typeUrl, { nonce: r.nonce });
  }

  nack(r: Received<DeltaDiscoveryResponse>, message: string): void {
    this.send(r.typeUrl, { nonce: r.nonce, errorDetail: message });
  }
}

/**
 * An ADS client of the xDS port: TLS verifying the server name against the cluster's roots (what
 * `GET /v1/xds/server` or `XdsServer.clientTls()` gives), or plaintext when `tls` is undefined (a
 * server started with `--xds-plaintext`). Proxies authenticate with a token either way.
 */
export function adsClient(
  address: string,
  tls: XdsClientTls | undefined,
): AggregatedDiscoveryServiceClient {
  const { credentials, options } = xdsChannelCredentials(tls);
  return new AggregatedDiscoveryServiceClient(address, credentials, options);
}

export function connectDelta(
  client: AggregatedDiscoveryServiceClient,
  nodeId: string,
  metadata = new grpc.Metadata(),
  options: ClientOptions = {},
): DeltaClient {
  return new DeltaClient(client.deltaAggregatedResources(metadata), nodeId, options);
}
