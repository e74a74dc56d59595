/**
 * Lean fake Envoys for the fan-out benchmark: they subscribe like Envoy (CDS and LDS wildcard, EDS
 * for the clusters received, SDS for the secret the clusters name), ACK every response at once,
 * and report when the initial view is complete and when each round's endpoint change is applied.
 * Responses are read with wire-reader.ts and requests written with the wire helpers of
 * src/xds/wire.ts: the workers share the cores with the server under test, and ts-proto's
 * fromPartial + encode of every ACK was a large part of their CPU.
 */
import type { BidiConnection, BidiStream } from '../shared/bidi-client.js';
import { AggregatedDiscoveryServiceService as Ads } from '../../src/gen/envoy/service/discovery/v3/ads.js';
import { TypeUrl } from '../../src/xds/types.js';
import { lenField, stringField } from '../../src/xds/wire.js';
import { markerCluster, markerPortBase, wallClockMs, type Expected } from './protocol.js';
import { firstEndpointPort, parseResponse, type ParsedResponse } from './wire-reader.js';

export interface ProxyHooks {
  synced(at: number): void;
  acked(round: number, at: number): void;
  failed(message: string): void;
}

/**
 * `envoy.config.core.v3.Node { id = 1; cluster = 2; user_agent_name = 6 }` as field `fieldNumber`.
 */
function nodeField(fieldNumber: number, id: string): Buffer {
  return lenField(
    fieldNumber,
    Buffer.concat([stringField(1, id), stringField(2, 'bench'), stringField(6, 'isthmus-bench')]),
  );
}

/**
 * `DeltaDiscoveryRequest { node = 1; type_url = 2; resource_names_subscribe = 3; response_nonce = 6
 * }`.
 */
/** `type_url` (field 2 of a DeltaDiscoveryRequest) per type: the same bytes in every ACK. */
const deltaTypeUrlFields = new Map<string, Buffer>();

/**
 * A Delta ACK: `DeltaDiscoveryRequest { type_url = 2; response_nonce = 6 }`, built into one buffer.
 */
export function deltaAck(typeUrl: string, nonce: string): Buffer {
  let typeField = deltaTypeUrlFields.get(typeUrl);
  if (!typeField) deltaTypeUrlFields.set(typeUrl, (typeField = stringField(2, typeUrl)));
  const nonceLength = Buffer.byteLength(nonce);
  if (nonceLength === 0 || nonceLength > 127)
    return Buffer.concat([typeField, stringField(6, nonce)]);
  const out = Buffer.allocUnsafe(typeField.length + 2 + nonceLength);
  typeField.copy(out, 0);
  out[typeField.length] = (6 << 3) | 2;
  out[typeField.length + 1] = nonceLength;
  out.write(nonce, typeField.length + 2);
  return out;
}

export function deltaRequest(
  nodeId: string | undefined,
  typeUrl: string,
  subscribe: readonly string[],
  nonce: string,
): Buffer {
  return Buffer.concat([
    nodeId === undefined ? Buffer.alloc(0) : nodeField(1, nodeId),
    stringField(2, typeUrl),
    ...subscribe.map((n) => lenField(3, Buffer.from(n, 'utf8'))),
    stringField(6, nonce),
  ]);
}

/**
 * `DiscoveryRequest { version_info = 1; node = 2; resource_names = 3; type_url = 4; response_nonce
 * = 5 }`.
 */
export function sotwRequest(
  nodeId: string | undefined,
  typeUrl: string,
  names: readonly string[],
  version: string,
  nonce: string,
): Buffer {
  return Buffer.concat([
    stringField(1, version),
    nodeId === undefined ? Buffer.alloc(0) : nodeField(2, nodeId),
    ...names.map((n) => lenField(3, Buffer.from(n, 'utf8'))),
    stringField(4, typeUrl),
    stringField(5, nonce),
  ]);
}

abstract class BenchProxy {
  protected readonly stream: BidiStream;
  private readonly held = new Map<string, Set<string>>();
  private readonly requested = new Set<string>();
  private isSynced = false;
  private lastRound = 0;
  private closing = false;
  protected sentNode = false;

  constructor(
    connection: BidiConnection,
    path: string,
    protected readonly nodeId: string,
    private readonly expected: Expected,
    private readonly hooks: ProxyHooks,
  ) {
    this.stream = connection.stream(path);
    this.stream.on('data', (b: Buffer) => this.onResponse(b));
    this.stream.on('error', (err: Error) => {
      if (!this.closing) hooks.failed(`${nodeId}: stream failed: ${err.message}`);
    });
  }

  /** Sends the first request (wildcard CDS, with the node), as Envoy does on a new stream. */
  start(): this {
    this.subscribe(TypeUrl.cluster, []);
    return this;
  }

  protected abstract readonly delta: boolean;
  /** Sends a subscription request adding `names` (an empty list is a wildcard). */
  protected abstract subscribe(typeUrl: string, names: readonly string[]): void;
  protected abstract ack(res: ParsedResponse): void;

  close(): void {
    this.closing = true;
    this.stream.cancel();
  }

  private onResponse(buf: Buffer): void {
    let res: ParsedResponse;
    try {
      res = parseResponse(buf, this.delta);
    } catch (err) {
      this.hooks.failed(`${this.nodeId}: unreadable response: ${(err as Error).message}`);
      return;
    }
    this.hold(res);
    if (res.typeUrl === TypeUrl.cluster) this.onClusters(res);
    const round = res.typeUrl === TypeUrl.endpoint ? this.markerRound(buf, res) : undefined;
    this.ack(res);
    const at = wallClockMs();
    if (res.typeUrl === TypeUrl.endpoint) this.requestOnce(TypeUrl.listener, []);
    if (round !== undefined && round > this.lastRound) {
      this.lastRound = round;
      this.hooks.acked(round, at);
    }
    this.checkSynced(at);
  }

  private hold(res: ParsedResponse): void {
    let names = this.held.get(res.typeUrl);
    if (!names) this.held.set(res.typeUrl, (names = new Set()));
    // SotW CDS and LDS responses carry the complete state.
    const fullState =
      !this.delta && (res.typeUrl === TypeUrl.cluster || res.typeUrl === TypeUrl.listener);
    if (fullState) names.clear();
    for (const r of res.resources) names.add(r.name);
    for (const name of res.removed) names.delete(name);
  }

  /** Envoy subscribes to a new cluster's endpoints and secrets while it warms the cluster. */
  private onClusters(res: ParsedResponse): void {
    const eds = this.held.get(TypeUrl.endpoint);
    const fresh = res.resources
      .map((r) => r.name)
      .filter((n) => !this.requested.has(`eds ${n}`) && !eds?.has(n));
    for (const n of fresh) this.requested.add(`eds ${n}`);
    if (fresh.length > 0) this.subscribe(TypeUrl.endpoint, fresh);
    if (res.resources.length > 0) this.requestOnce(TypeUrl.secret, [this.expected.secretName]);
  }

  private requestOnce(typeUrl: string, names: readonly string[]): void {
    if (this.requested.has(typeUrl)) return;
    this.requested.add(typeUrl);
    this.subscribe(typeUrl, names);
  }

  private markerRound(buf: Buffer, res: ParsedResponse): number | undefined {
    const marker = res.resources.find((r) => r.name === markerCluster);
    const port = marker && firstEndpointPort(buf, marker);
    return port === undefined ? undefined : port - markerPortBase;
  }

  private checkSynced(at: number): void {
    if (this.isSynced) return;
    const count = (t: string) => this.held.get(t)?.size ?? 0;
    const e = this.expected;
    if (count(TypeUrl.cluster) < e.clusters || count(TypeUrl.endpoint) < e.endpoints) return;
    if (count(TypeUrl.secret) < e.secrets || count(TypeUrl.listener) < e.listeners) return;
    this.isSynced = true;
    this.hooks.synced(at);
  }
}

export class DeltaProxy extends BenchProxy {
  protected readonly delta = true;

  constructor(connection: BidiConnection, nodeId: string, expected: Expected, hooks: ProxyHooks) {
    super(connection, Ads.deltaAggregatedResources.path, nodeId, expected, hooks);
  }

  private send(typeUrl: string, subscribe: readonly string[], nonce: string): void {
    const withNode = !this.sentNode;
    this.sentNode = true;
    this.stream.write(deltaRequest(withNode ? this.nodeId : undefined, typeUrl, subscribe, nonce));
  }

  protected subscribe(typeUrl: string, names: readonly string[]): void {
    this.send(typeUrl, names, '');
  }

  protected ack(res: ParsedResponse): void {
    if (!this.sentNode) this.send(res.typeUrl, [], res.nonce);
    else this.stream.write(deltaAck(res.typeUrl, res.nonce));
  }
}

export class SotwProxy extends BenchProxy {
  protected readonly delta = false;
  private readonly names = new Map<string, string[]>();
  private readonly versions = new Map<string, string>();
  private readonly nonces = new Map<string, string>();

  constructor(connection: BidiConnection, nodeId: string, expected: Expected, hooks: ProxyHooks) {
    super(connection, Ads.streamAggregatedResources.path, nodeId, expected, hooks);
  }

  private send(typeUrl: string): void {
    const withNode = !this.sentNode;
    this.sentNode = true;
    const names = this.names.get(typeUrl) ?? [];
    this.stream.write(
      sotwRequest(
        withNode ? this.nodeId : undefined,
        typeUrl,
        names,
        this.versions.get(typeUrl) ?? '',
        this.nonces.get(typeUrl) ?? '',
      ),
    );
  }

  /** A SotW request names the complete subscription, with the type's current version and nonce. */
  protected subscribe(typeUrl: string, names: readonly string[]): void {
    this.names.set(typeUrl, [...(this.names.get(typeUrl) ?? []), ...names]);
    this.send(typeUrl);
  }

  protected ack(res: ParsedResponse): void {
    this.versions.set(res.typeUrl, res.versionInfo);
    this.nonces.set(res.typeUrl, res.nonce);
    this.send(res.typeUrl);
  }
}
