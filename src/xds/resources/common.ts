import { ApiVersion, type ConfigSource } from '../../gen/envoy/config/core/v3/config_source.js';
import type { SdsSecretConfig } from '../../gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import { Address } from '../../gen/envoy/config/core/v3/address.js';
import type { XdsTypeUrl } from '../types.js';
import type { EnvoyMessage } from '../cache/entry.js';

/**
 * One resource a generator wants to publish. `key` serializes every input the resource is built
 * from, so an unchanged key means an unchanged resource and `build` (and its encode) is skipped.
 */
export interface ResourceSpec {
  readonly typeUrl: XdsTypeUrl;
  readonly name: string;
  readonly key: string;
  build(): EnvoyMessage;
}

export function spec(
  typeUrl: XdsTypeUrl,
  name: string,
  input: unknown,
  build: () => EnvoyMessage,
): ResourceSpec {
  return { typeUrl, name, key: JSON.stringify(input), build };
}

/** Everything dynamic comes over the one ADS stream. */
export function adsConfigSource(): ConfigSource {
  return {
    $type: 'envoy.config.core.v3.ConfigSource',
    authorities: [],
    configSourceSpecifier: { $case: 'ads', value: {} },
    initialFetchTimeout: undefined,
    resourceApiVersion: ApiVersion.V3,
  };
}

export function sdsSecret(name: string): SdsSecretConfig {
  return {
    $type: 'envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig',
    name,
    sdsConfig: adsConfigSource(),
  };
}

export function socketAddress(address: string, port: number): Address {
  return Address.fromPartial({
    address: {
      $case: 'socketAddress',
      value: { address, portSpecifier: { $case: 'portValue', value: port } },
    },
  });
}

export function durationMs(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/** Stat prefixes may not contain ':' safely in every sink; keep them readable and stable. */
export function statPrefix(name: string): string {
  return name.replace(/[^A-Za-z0-9_.~-]/g, '_');
}
