import * as grpc from '@grpc/grpc-js';
import {
  DeltaDiscoveryRequest,
  DiscoveryRequest,
} from '../../src/gen/envoy/service/discovery/v3/discovery.js';
import { type XdsClientTls, xdsChannelCredentials } from '../../src/xds/tls.js';

/**
 * ADS streams that write whatever bytes they are given as messages: what an attacker sends, not
 * what Envoy sends (issue 18's abuse tests and bench/xds-abuse).
 */
const same = (b: Buffer): Buffer => b;
const method = (name: string) => ({
  path: `/envoy.service.discovery.v3.AggregatedDiscoveryService/${name}`,
  requestStream: true,
  responseStream: true,
  requestSerialize: same,
  requestDeserialize: same,
  responseSerialize: same,
  responseDeserialize: same,
});
const RawAdsClient = grpc.makeGenericClientConstructor(
  {
    DeltaAggregatedResources: method('DeltaAggregatedResources'),
    StreamAggregatedResources: method('StreamAggregatedResources'),
  },
  'RawAds',
);

export interface RawStream {
  write(message: Buffer): void;
  /** The stream's final status (whoever ended it). */
  readonly ended: Promise<grpc.StatusObject>;
  close(): void;
}

/** A raw client of the xDS port: TLS as `tls` says (see `adsClient`), plaintext without it. */
export function rawAdsClient(address: string, tls: XdsClientTls | undefined): grpc.Client {
  const { credentials, options } = xdsChannelCredentials(tls);
  return new RawAdsClient(address, credentials, options);
}

export function openRawStream(
  client: grpc.Client,
  metadata = new grpc.Metadata(),
  api: 'delta' | 'sotw' = 'delta',
): RawStream {
  const name = api === 'delta' ? 'DeltaAggregatedResources' : 'StreamAggregatedResources';
  const call = (
    client as unknown as Record<
      string,
      (md: grpc.Metadata) => grpc.ClientDuplexStream<Buffer, Buffer>
    >
  )[name]!(metadata);
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => {}); // the status event carries it
  call.on('data', () => {});
  return {
    write: (message) => void call.write(message),
    ended,
    close: () => call.cancel(),
  };
}

/** `x-isthmus-token` metadata, empty without a token. */
export function tokenMetadata(secretId?: string): grpc.Metadata {
  const md = new grpc.Metadata();
  if (secretId !== undefined) md.set('x-isthmus-token', secretId);
  return md;
}

/** A first request whose node metadata nests `depth` Structs in it: `{a: {a: ... {}}}`. */
export function deeplyNestedRequest(
  nodeId: string,
  depth: number,
  api: 'delta' | 'sotw' = 'delta',
): Buffer {
  let metadata: Record<string, unknown> = {};
  for (let i = 0; i < depth; i++) metadata = { a: metadata };
  const partial = {
    node: { id: nodeId, metadata },
    typeUrl: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  };
  const bytes =
    api === 'delta'
      ? DeltaDiscoveryRequest.encode(DeltaDiscoveryRequest.fromPartial(partial)).finish()
      : DiscoveryRequest.encode(DiscoveryRequest.fromPartial(partial)).finish();
  return Buffer.from(bytes);
}
