import { describe, expect, it } from 'vitest';
import { type BootstrapOptions, buildBootstrap, xdsClusterName } from '../../src/mesh/bootstrap.js';
import { xdsServerName } from '../../src/mesh/names.js';
import { validateJson } from '../helpers/pgv.js';

const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';
const HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

const base: BootstrapOptions = {
  proxyId: 'web-sidecar-proxy',
  kind: 'connect-proxy',
  datacenter: 'dc1',
  xdsAddr: { host: '10.1.2.3', port: 8502 },
  adminAddr: { host: '127.0.0.1', port: 19000 },
  tls: {
    caPem: '-----BEGIN CERTIFICATE-----\nroots\n-----END CERTIFICATE-----\n',
    serverName: xdsServerName,
  },
};
const TLS_CONTEXT = 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

/** The bootstrap as Envoy would read it from a file: through JSON text. */
function bootstrapJson(opts: Partial<BootstrapOptions> = {}): any {
  return JSON.parse(JSON.stringify(buildBootstrap({ ...base, ...opts })));
}

const variants: readonly [string, Partial<BootstrapOptions>][] = [
  ['sidecar', {}],
  ['sidecar, plaintext xDS', { tls: undefined }],
  ['sidecar with token', { token: 'b1e7f3a0-1234-4cde-9f00-0123456789ab' }],
  ['mesh gateway', { proxyId: 'mesh-gateway-1', kind: 'mesh-gateway' }],
  [
    'mesh gateway with token',
    { proxyId: 'mesh-gateway-1', kind: 'mesh-gateway', token: 'tok-secret' },
  ],
  [
    'xDS by host name, IPv6 admin',
    { xdsAddr: { host: 'isthmus-server', port: 8502 }, adminAddr: { host: '::1', port: 19001 } },
  ],
];

describe('buildBootstrap', () => {
  it.each(variants)(
    '%s: is a valid envoy.config.bootstrap.v3.Bootstrap (fields and validate.rules)',
    (_name, opts) => {
      expect(validateJson(BOOTSTRAP, bootstrapJson(opts))).toEqual([]);
    },
  );

  it('names the proxy by its ID, cluster default and kind metadata', () => {
    expect(bootstrapJson().node).toEqual({
      id: 'web-sidecar-proxy',
      cluster: 'web-sidecar-proxy',
      metadata: { isthmus_kind: 'connect-proxy', isthmus_datacenter: 'dc1' },
    });
    const gw = bootstrapJson({
      proxyId: 'gw',
      kind: 'mesh-gateway',
      cluster: 'mesh-gateway',
      datacenter: 'dc2',
    });
    expect(gw.node).toEqual({
      id: 'gw',
      cluster: 'mesh-gateway',
      metadata: { isthmus_kind: 'mesh-gateway', isthmus_datacenter: 'dc2' },
    });
  });

  it('gets everything else over one Delta ADS stream (v3)', () => {
    const dyn = bootstrapJson().dynamic_resources;
    expect(dyn.ads_config).toMatchObject({
      api_type: 'DELTA_GRPC',
      transport_api_version: 'V3',
      set_node_on_first_message_only: true,
      grpc_services: [{ envoy_grpc: { cluster_name: xdsClusterName } }],
    });
    expect(dyn.cds_config).toEqual({ ads: {}, resource_api_version: 'V3' });
    expect(dyn.lds_config).toEqual({ ads: {}, resource_api_version: 'V3' });
  });

  it('sends the token as x-isthmus-token metadata only when one is given', () => {
    const withToken = bootstrapJson({ token: 'tok-secret' }).dynamic_resources.ads_config
      .grpc_services;
    expect(withToken).toEqual([
      {
        envoy_grpc: { cluster_name: xdsClusterName },
        initial_metadata: [{ key: 'x-isthmus-token', value: 'tok-secret' }],
      },
    ]);
    const without = bootstrapJson().dynamic_resources.ads_config.grpc_services;
    expect(without).toEqual([{ envoy_grpc: { cluster_name: xdsClusterName } }]);
    expect(JSON.stringify(bootstrapJson())).not.toContain('initial_metadata');
  });

  it('reaches the xDS server through one static HTTP/2 cluster with keepalive', () => {
    const [cluster, ...others] = bootstrapJson().static_resources.clusters;
    expect(others).toEqual([]);
    expect(cluster).toMatchObject({ name: 'isthmus_xds', type: 'STATIC', connect_timeout: '1s' });
    expect(cluster.dns_lookup_family).toBeUndefined();
    expect(cluster.load_assignment).toEqual({
      cluster_name: 'isthmus_xds',
      endpoints: [
        {
          lb_endpoints: [
            {
              endpoint: { address: { socket_address: { address: '10.1.2.3', port_value: 8502 } } },
            },
          ],
        },
      ],
    });
    expect(cluster.typed_extension_protocol_options[HTTP_OPTIONS]).toEqual({
      '@type': `type.googleapis.com/${HTTP_OPTIONS}`,
      explicit_http_config: {
        http2_protocol_options: { connection_keepalive: { interval: '30s', timeout: '5s' } },
      },
    });
  });

  it('dials the xDS server over TLS: SNI and a DNS SAN match on the server name, the roots inline, ALPN h2', () => {
    const [cluster] = bootstrapJson().static_resources.clusters;
    expect(cluster.transport_socket).toEqual({
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': `type.googleapis.com/${TLS_CONTEXT}`,
        sni: 'xds.isthmus.internal',
        common_tls_context: {
          alpn_protocols: ['h2'],
          validation_context: {
            trusted_ca: { inline_string: base.tls?.caPem },
            match_typed_subject_alt_names: [
              { san_type: 'DNS', matcher: { exact: 'xds.isthmus.internal' } },
            ],
          },
        },
      },
    });
  });

  it('writes no transport socket for a plaintext xDS server', () => {
    const [cluster] = bootstrapJson({ tls: undefined }).static_resources.clusters;
    expect(cluster.transport_socket).toBeUndefined();
  });

  it('resolves a host name with STRICT_DNS and writes IPv6 without brackets', () => {
    const json = bootstrapJson({
      xdsAddr: { host: 'isthmus-server', port: 9502 },
      adminAddr: { host: '::1', port: 19001 },
    });
    const [cluster] = json.static_resources.clusters;
    expect(cluster.type).toBe('STRICT_DNS');
    // Envoy's default family would dial ::1 for `localhost` while the server listens on 127.0.0.1.
    expect(cluster.dns_lookup_family).toBe('V4_PREFERRED');
    expect(
      cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address,
    ).toEqual({ address: 'isthmus-server', port_value: 9502 });
    expect(json.admin).toEqual({
      address: { socket_address: { address: '::1', port_value: 19001 } },
    });
  });

  it("raises the runtime's RE2 program size limit, which intention regexes with long names exceed", () => {
    const runtime = bootstrapJson() as unknown as {
      layered_runtime: { layers: { name: string; static_layer?: Record<string, number> }[] };
    };
    const layer = runtime.layered_runtime.layers.find((l) => l.static_layer);
    // Envoy's default error level is 100: `^spiffe://<43-char trust
    // domain>/ns/default/dc/[^/]+/svc/<63-char name>$` is larger.
    expect(layer?.static_layer?.['re2.max_program_size.error_level']).toBeGreaterThanOrEqual(
      100_000,
    );
    expect(runtime.layered_runtime.layers.map((l) => l.name)).toContain('admin_layer');
  });

  it('binds the admin listener where asked', () => {
    expect(bootstrapJson().admin).toEqual({
      address: { socket_address: { address: '127.0.0.1', port_value: 19000 } },
    });
  });
});

describe('validateJson', () => {
  const cluster = (json: any) => json.static_resources.clusters[0];

  it('rejects a misspelled field, also inside an Any', () => {
    const json = bootstrapJson();
    json.dynamic_resources.ads_config.set_node_on_first_mesage_only = true;
    cluster(json).typed_extension_protocol_options[
      HTTP_OPTIONS
    ].explicit_http_config.http2_protocol_option = {};
    expect(validateJson(BOOTSTRAP, json)).toEqual([
      `${BOOTSTRAP}: static_resources.clusters[0].typed_extension_protocol_options["${HTTP_OPTIONS}"](${HTTP_OPTIONS}).explicit_http_config.http2_protocol_option: unknown field of ${HTTP_OPTIONS}.ExplicitHttpConfig`,
      `${BOOTSTRAP}: dynamic_resources.ads_config.set_node_on_first_mesage_only: unknown field of envoy.config.core.v3.ApiConfigSource`,
    ]);
  });

  it('reports validate.rules violations: connect_timeout 0s (gt 0) and an empty metadata key', () => {
    const json = bootstrapJson({ token: 'tok' });
    cluster(json).connect_timeout = '0s';
    json.dynamic_resources.ads_config.grpc_services[0].initial_metadata[0].key = '';
    expect(validateJson(BOOTSTRAP, json)).toEqual([
      `${BOOTSTRAP}: static_resources.clusters[0].connect_timeout: must be > 0s`,
      `${BOOTSTRAP}: dynamic_resources.ads_config.grpc_services[0].initial_metadata[0].key: must be at least 1 characters`,
    ]);
  });

  it('rejects values of the wrong JSON form and unknown enum names', () => {
    const json = bootstrapJson();
    cluster(json).connect_timeout = 1;
    cluster(json).type = 'STATC';
    json.admin.address.socket_address.port_value = 'http';
    expect(validateJson(BOOTSTRAP, json)).toEqual([
      `${BOOTSTRAP}: static_resources.clusters[0].type: "STATC" is not a DiscoveryType value (STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST)`,
      `${BOOTSTRAP}: static_resources.clusters[0].connect_timeout: a Duration must be a string like "1.5s", got 1`,
      `${BOOTSTRAP}: admin.address.socket_address.port_value: uint32 must be an integer number or string, got a string "http"`,
    ]);
  });

  it('rejects two members of one oneof and an Any whose type proto/ cannot check', () => {
    const json = bootstrapJson();
    json.dynamic_resources.cds_config.path = '/etc/envoy/cds.yaml';
    cluster(json).typed_extension_protocol_options.x = {
      '@type': 'type.googleapis.com/example.Unknown',
    };
    expect(validateJson(BOOTSTRAP, json)).toEqual([
      `${BOOTSTRAP}: static_resources.clusters[0].typed_extension_protocol_options["x"]: Any type example.Unknown is not in proto/, so its fields cannot be checked`,
      `${BOOTSTRAP}: dynamic_resources.cds_config.path: oneof config_source_specifier already set by ads`,
    ]);
  });

  it('accepts lowerCamel JSON names, as Envoy does', () => {
    const json = bootstrapJson();
    const ads = json.dynamic_resources.ads_config;
    ads.apiType = ads.api_type;
    delete ads.api_type;
    expect(validateJson(BOOTSTRAP, json)).toEqual([]);
    ads.api_type = 'GRPC';
    expect(validateJson(BOOTSTRAP, json)).toEqual([
      `${BOOTSTRAP}: dynamic_resources.ads_config.api_type: set twice (by its proto name and its JSON name)`,
    ]);
  });
});
