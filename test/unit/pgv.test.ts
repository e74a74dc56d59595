import { describe, it, expect } from 'vitest';
import {
  Cluster,
  Cluster_DiscoveryType,
  type Cluster_LbPolicy,
} from '../../src/gen/envoy/config/cluster/v3/cluster.js';
import { Metadata } from '../../src/gen/envoy/config/core/v3/base.js';
import { ApiVersion, RateLimitSettings } from '../../src/gen/envoy/config/core/v3/config_source.js';
import { Address } from '../../src/gen/envoy/config/core/v3/address.js';
import { RequestMethod } from '../../src/gen/envoy/config/core/v3/base.js';
import { HealthCheck_HttpHealthCheck } from '../../src/gen/envoy/config/core/v3/health_check.js';
import {
  SchemeHeaderTransformation,
  UpstreamHttpProtocolOptions,
} from '../../src/gen/envoy/config/core/v3/protocol.js';
import { ClusterLoadAssignment } from '../../src/gen/envoy/config/endpoint/v3/endpoint.js';
import { Listener } from '../../src/gen/envoy/config/listener/v3/listener.js';
import { RouteConfiguration } from '../../src/gen/envoy/config/route/v3/route.js';
import { HistogramBucketSettings } from '../../src/gen/envoy/config/metrics/v3/stats.js';
import { TcpProxy } from '../../src/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
import { assertValid, validateAny, validateMessage } from '../helpers/pgv.js';

const CLUSTER = 'envoy.config.cluster.v3.Cluster';
const TCP_PROXY_URL = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

function edsCluster(overrides: Partial<Cluster> = {}): Uint8Array {
  return Cluster.encode(
    Cluster.fromPartial({
      name: 'api.default',
      clusterDiscoveryType: { $case: 'type', value: Cluster_DiscoveryType.EDS },
      edsClusterConfig: {
        edsConfig: {
          configSourceSpecifier: { $case: 'ads', value: {} },
          resourceApiVersion: ApiVersion.V3,
        },
      },
      connectTimeout: { seconds: 5, nanos: 0 },
      ...overrides,
    }),
  ).finish();
}

function endpoint(port: number) {
  const address = {
    socketAddress: {
      address: '10.0.0.1',
      portSpecifier: { $case: 'portValue' as const, value: port },
    },
  };
  return {
    hostIdentifier: {
      $case: 'endpoint' as const,
      value: {
        address: { address: { $case: 'socketAddress' as const, value: address.socketAddress } },
      },
    },
  };
}

function tcpListener(filterName: string, statPrefix: string): Uint8Array {
  const tcpProxy = TcpProxy.encode(
    TcpProxy.fromPartial({ statPrefix, clusterSpecifier: { $case: 'cluster', value: 'api' } }),
  ).finish();
  return Listener.encode(
    Listener.fromPartial({
      name: 'public',
      address: {
        address: {
          $case: 'socketAddress',
          value: { address: '0.0.0.0', portSpecifier: { $case: 'portValue', value: 8443 } },
        },
      },
      filterChains: [
        {
          filters: [
            {
              name: filterName,
              configType: {
                $case: 'typedConfig',
                value: { typeUrl: TCP_PROXY_URL, value: Buffer.from(tcpProxy) },
              },
            },
          ],
        },
      ],
    }),
  ).finish();
}

describe('validateMessage', () => {
  it('accepts a well-formed EDS cluster', () => {
    expect(validateMessage(CLUSTER, edsCluster())).toEqual([]);
    expect(() => assertValid(CLUSTER, edsCluster())).not.toThrow();
  });

  it('reports an empty cluster name (string min_len)', () => {
    expect(validateMessage(CLUSTER, edsCluster({ name: '' }))).toEqual([
      `${CLUSTER}: name: must be at least 1 characters`,
    ]);
  });

  it('reports connect_timeout of zero (duration gt {}) and an undefined lb_policy (enum defined_only)', () => {
    const errors = validateMessage(
      CLUSTER,
      edsCluster({ connectTimeout: { seconds: 0, nanos: 0 }, lbPolicy: 42 as Cluster_LbPolicy }),
    );
    expect(errors).toEqual([
      `${CLUSTER}: connect_timeout: must be > 0s`,
      `${CLUSTER}: lb_policy: must be a defined LbPolicy value, got 42`,
    ]);
  });

  it('reports an out-of-range port with its full snake_case path, collecting every violation', () => {
    const cla = ClusterLoadAssignment.encode(
      ClusterLoadAssignment.fromPartial({
        clusterName: 'api',
        endpoints: [{ lbEndpoints: [endpoint(8080), endpoint(70000), endpoint(65536)] }],
      }),
    ).finish();
    expect(validateMessage('envoy.config.endpoint.v3.ClusterLoadAssignment', cla)).toEqual(
      [1, 2].map(
        (i) =>
          `envoy.config.endpoint.v3.ClusterLoadAssignment: endpoints[0].lb_endpoints[${i}].endpoint.address.socket_address.port_value: must be <= 65535`,
      ),
    );
  });

  it('recurses into a typed_config Any and reports violations inside it', () => {
    const errors = validateMessage('envoy.config.listener.v3.Listener', tcpListener('', ''));
    expect(errors).toEqual([
      'envoy.config.listener.v3.Listener: filter_chains[0].filters[0].name: must be at least 1 characters',
      'envoy.config.listener.v3.Listener: filter_chains[0].filters[0].typed_config' +
        '(envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy).stat_prefix: must be at least 1 characters',
    ]);
    expect(
      validateMessage(
        'envoy.config.listener.v3.Listener',
        tcpListener('envoy.filters.network.tcp_proxy', 'public'),
      ),
    ).toEqual([]);
  });

  it('reports a required oneof left unset', () => {
    const tcpProxy = TcpProxy.encode(TcpProxy.fromPartial({ statPrefix: 'public' })).finish();
    expect(
      validateMessage('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', tcpProxy),
    ).toEqual([
      'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy: cluster_specifier: one of [cluster, weighted_clusters] is required',
    ]);
    const address = Address.encode(Address.fromPartial({})).finish();
    expect(validateMessage('envoy.config.core.v3.Address', address)).toEqual([
      'envoy.config.core.v3.Address: address: one of [socket_address, pipe, envoy_internal_address] is required',
    ]);
  });

  it('reports repeated min_items and an HTTP_HEADER_NAME item', () => {
    const routes = RouteConfiguration.encode(
      RouteConfiguration.fromPartial({
        name: 'http',
        virtualHosts: [
          { name: 'api', domains: [], requestHeadersToRemove: ['x-ok', 'x-bad\nheader'] },
        ],
      }),
    ).finish();
    expect(validateMessage('envoy.config.route.v3.RouteConfiguration', routes)).toEqual([
      'envoy.config.route.v3.RouteConfiguration: virtual_hosts[0].domains: must contain at least 1 item(s)',
      'envoy.config.route.v3.RouteConfiguration: virtual_hosts[0].request_headers_to_remove[1]: ' +
        'must be a valid HTTP_HEADER_NAME (strict: false)',
    ]);
  });

  it('applies strict HTTP_HEADER_NAME unless the string is empty (ignore_empty)', () => {
    const type = 'envoy.config.core.v3.UpstreamHttpProtocolOptions';
    const opts = (header: string) =>
      UpstreamHttpProtocolOptions.encode(
        UpstreamHttpProtocolOptions.fromPartial({ overrideAutoSniHeader: header }),
      ).finish();
    expect(validateMessage(type, opts(''))).toEqual([]);
    expect(validateMessage(type, opts(':authority'))).toEqual([]);
    expect(validateMessage(type, opts('bad header'))).toEqual([
      `${type}: override_auto_sni_header: must be a valid HTTP_HEADER_NAME (strict: true)`,
    ]);
  });

  it('enforces string `in` and enum `not_in`', () => {
    const scheme = SchemeHeaderTransformation.encode(
      SchemeHeaderTransformation.fromPartial({
        transformation: { $case: 'schemeToOverwrite', value: 'ftp' },
      }),
    ).finish();
    expect(validateMessage('envoy.config.core.v3.SchemeHeaderTransformation', scheme)).toEqual([
      'envoy.config.core.v3.SchemeHeaderTransformation: scheme_to_overwrite: must be in ["http","https"]',
    ]);
    const check = HealthCheck_HttpHealthCheck.encode(
      HealthCheck_HttpHealthCheck.fromPartial({ path: '/healthz', method: RequestMethod.CONNECT }),
    ).finish();
    expect(validateMessage('envoy.config.core.v3.HealthCheck.HttpHealthCheck', check)).toEqual([
      'envoy.config.core.v3.HealthCheck.HttpHealthCheck: method: must not be in [6]',
    ]);
  });

  it('enforces repeated unique and per-item double gt', () => {
    const buckets = HistogramBucketSettings.encode(
      HistogramBucketSettings.fromPartial({
        match: { matchPattern: { $case: 'exact', value: 'upstream_rq_time' } },
        buckets: [1, 0, 5, 5],
      }),
    ).finish();
    expect(validateMessage('envoy.config.metrics.v3.HistogramBucketSettings', buckets)).toEqual([
      'envoy.config.metrics.v3.HistogramBucketSettings: buckets[1]: must be > 0',
      'envoy.config.metrics.v3.HistogramBucketSettings: buckets[3]: repeats an earlier item; items must be unique',
    ]);
  });

  it('applies scalar rules to a set wrapper and ignores an unset one', () => {
    const type = 'envoy.config.core.v3.RateLimitSettings';
    const settings = (fillRate?: number) =>
      RateLimitSettings.encode(RateLimitSettings.fromPartial({ fillRate })).finish();
    expect(validateMessage(type, settings())).toEqual([]);
    expect(validateMessage(type, settings(0))).toEqual([`${type}: fill_rate: must be > 0`]);
    expect(validateMessage(type, settings(2.5))).toEqual([]);
  });

  it('checks map keys', () => {
    const metadata = Metadata.encode(
      Metadata.fromPartial({ filterMetadata: { '': { a: 1 }, 'envoy.lb': { canary: true } } }),
    ).finish();
    expect(validateMessage('envoy.config.core.v3.Metadata', metadata)).toEqual([
      'envoy.config.core.v3.Metadata: filter_metadata[""].key: must be at least 1 characters',
    ]);
  });

  it('assertValid throws with every violation listed', () => {
    expect(() =>
      assertValid(CLUSTER, edsCluster({ name: '', connectTimeout: { seconds: -1, nanos: 0 } })),
    ).toThrow(
      /violates 2 validate.rules constraint\(s\):\n {2}.*name: .*\n {2}.*connect_timeout: must be > 0s/,
    );
  });
});

describe('validateAny', () => {
  it('validates a known type by its type URL', () => {
    const value = TcpProxy.encode(
      TcpProxy.fromPartial({
        statPrefix: '',
        clusterSpecifier: { $case: 'cluster', value: 'api' },
      }),
    ).finish();
    expect(validateAny({ typeUrl: TCP_PROXY_URL, value })).toEqual([
      'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy: stat_prefix: must be at least 1 characters',
    ]);
  });

  it('skips a type URL it does not know without throwing', () => {
    expect(
      validateAny({
        typeUrl: 'type.googleapis.com/example.Unknown',
        value: new Uint8Array([1, 2, 3]),
      }),
    ).toEqual([]);
  });
});
