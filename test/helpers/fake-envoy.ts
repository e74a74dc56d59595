/**
 * A fake Envoy: the ts-proto generated ADS client speaking SotW or Delta like Envoy does, with
 * helpers to ACK/NACK (src/probe's client, plus SotW). Every resource it receives is checked
 * against Envoy's validate.rules; a violation fails the test at `next()`.
 */
import * as grpc from '@grpc/grpc-js';
import type { AggregatedDiscoveryServiceClient } from '../../src/gen/envoy/service/discovery/v3/ads.js';
import {
  DiscoveryRequest,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryResponse,
} from '../../src/gen/envoy/service/discovery/v3/discovery.js';
import { Status } from '../../src/gen/google/rpc/status.js';
import {
  type ClientOptions,
  DeltaClient,
  nameOf,
  type Received,
  XdsStreamClient,
} from '../../src/probe/delta-client.js';
import { validateAny } from './pgv.js';

export { adsClient, type Received, type ReceivedResource } from '../../src/probe/delta-client.js';

/** What every fake Envoy sends and checks: validate.rules on each resource, node cluster `test`. */
export const fakeEnvoyOptions: ClientOptions = {
  validate: (any) => validateAny(any),
  cluster: 'test',
  userAgentName: 'fake-envoy',
};

export class SotwEnvoy extends XdsStreamClient<DiscoveryRequest, DiscoveryResponse> {
  private readonly names = new Map<string, string[]>();
  private readonly acked = new Map<string, string>();
  private first = true;
  private lastSeenNonce = '';
  private readonly nonceByType = new Map<string, string>();

  constructor(
    stream: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>,
    nodeId: string,
  ) {
    super(stream, nodeId, fakeEnvoyOptions);
  }

  protected decode(raw: DiscoveryResponse): Received<DiscoveryResponse> {
    this.lastSeenNonce = raw.nonce;
    this.nonceByType.set(raw.typeUrl, raw.nonce);
    const resources = raw.resources.map((any) => {
      const message = this.decodeAny(any);
      return { name: nameOf(message), version: raw.versionInfo, message };
    });
    return {
      raw,
      typeUrl: raw.typeUrl,
      nonce: raw.nonce,
      versionInfo: raw.versionInfo,
      resources,
      removed: [],
    };
  }

  request(
    typeUrl: string,
    names: readonly string[],
    opts: { versionInfo?: string; nonce?: string; errorDetail?: string; withNode?: boolean } = {},
  ): void {
    this.names.set(typeUrl, [...names]);
    const withNode = opts.withNode ?? this.first;
    this.first = false;
    this.stream.write(
      DiscoveryRequest.fromPartial({
        versionInfo: opts.versionInfo ?? this.acked.get(typeUrl) ?? '',
        node: this.node(withNode),
        resourceNames: [...names],
        typeUrl,
        responseNonce: opts.nonce ?? '',
        errorDetail: opts.errorDetail
          ? Status.fromPartial({ code: 3, message: opts.errorDetail })
          : undefined,
      }),
    );
  }

  ack(r: Received<DiscoveryResponse>, names?: readonly string[]): void {
    this.acked.set(r.typeUrl, r.versionInfo);
    if (r.typeUrl.endsWith('Cluster') || r.typeUrl.endsWith('Listener'))
      this.held.set(r.typeUrl, new Map());
    this.apply(r);
    this.request(r.typeUrl, names ?? this.names.get(r.typeUrl) ?? [], {
      versionInfo: r.versionInfo,
      nonce: r.nonce,
    });
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
    this.request(r.typeUrl, this.names.get(r.typeUrl) ?? [], {
      nonce: r.nonce,
      errorDetail: message,
    });
  }
}

export class DeltaEnvoy extends DeltaClient {
  constructor(
    stream: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>,
    nodeId: string,
  ) {
    super(stream, nodeId, fakeEnvoyOptions);
  }
}

export function connectSotw(
  client: AggregatedDiscoveryServiceClient,
  nodeId: string,
  metadata = new grpc.Metadata(),
): SotwEnvoy {
  return new SotwEnvoy(client.streamAggregatedResources(metadata), nodeId);
}

export function connectDelta(
  client: AggregatedDiscoveryServiceClient,
  nodeId: string,
  metadata = new grpc.Metadata(),
): DeltaEnvoy {
  return new DeltaEnvoy(client.deltaAggregatedResources(metadata), nodeId);
}
