/**
 * A Delta fake Envoy that subscribes the way Envoy does (src/probe's XdsProbe: wildcard CDS and
 * LDS, then by name the endpoints, secrets and routes the held clusters and listeners refer to),
 * with every received resource checked against Envoy's validate.rules.
 */
import type * as grpc from '@grpc/grpc-js';
import type { AggregatedDiscoveryServiceClient } from '../../src/gen/envoy/service/discovery/v3/ads.js';
import { XdsProbe } from '../../src/probe/xds-probe.js';
import { fakeEnvoyOptions } from './fake-envoy.js';

export type { Config } from '../../src/probe/xds-probe.js';

export class EnvoyLike extends XdsProbe {
  constructor(client: AggregatedDiscoveryServiceClient, nodeId: string, metadata: grpc.Metadata) {
    super(client, nodeId, metadata, fakeEnvoyOptions);
  }
}
