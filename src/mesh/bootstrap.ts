import { isIP } from 'node:net';
import type { HostPort } from '../config/host-port.js';

/**
 * The Envoy v3 bootstrap of a sidecar or mesh gateway: who the proxy is (`node`), where its xDS
 * server is (one static cluster), and that everything else comes over one Delta ADS stream. Plain
 * proto3 JSON with proto field names, exactly what `envoy -c bootstrap.json` reads.
 */

/** The proxy kinds, named as Consul names them (`Kind` of the registered proxy service). */
export type BootstrapProxyKind = 'connect-proxy' | 'mesh-gateway';

export interface BootstrapOptions {
  /** The registered proxy service ID: the server looks the proxy up by `node.id`. */
  readonly proxyId: string;
  readonly kind: BootstrapProxyKind;
  /** `node.cluster` (Envoy's service cluster, the prefix of some stats); default the proxy ID. */
  readonly cluster?: string | undefined;
  readonly datacenter: string;
  /**
   * The isthmus xDS (gRPC) address, or several: the servers of one cluster (`--store etcd`), each
   * an endpoint of the xDS cluster, so a proxy whose server dies reconnects to another. A host
   * name makes the cluster STRICT_DNS (a name resolving to several servers works the same way).
   */
  readonly xdsAddr: HostPort | readonly HostPort[];
  readonly adminAddr: HostPort;
  /** A proxy token, sent as `x-isthmus-token` gRPC metadata on the ADS stream. */
  readonly token?: string | undefined;
  /**
   * How Envoy verifies the xDS server (`GET /v1/xds/server`); undefined: plaintext, for a server
   * started with `--xds-plaintext` only.
   */
  readonly tls: BootstrapTls | undefined;
}

/** The roots the xDS server's certificate chains to, and the name it carries (src/xds/tls.ts). */
export interface BootstrapTls {
  /** PEM bundle: every root the cluster trusts when the bootstrap is written. */
  readonly caPem: string;
  readonly serverName: string;
}

export type BootstrapJson = { readonly [key: string]: unknown };

/** The static cluster that reaches the isthmus xDS server. */
export const xdsClusterName = 'isthmus_xds';
/**
 * The gRPC metadata entry of an xDS stream that carries its proxy token: bootstraps set it as the
 * ADS cluster's `initial_metadata`, and src/acl/xds-auth.ts checks it.
 */
export const xdsTokenHeader = 'x-isthmus-token';
const httpProtocolOptionsType = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const upstreamTlsContextType = 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

export function buildBootstrap(opts: BootstrapOptions): BootstrapJson {
  return {
    node: buildNode(opts),
    static_resources: { clusters: [buildXdsCluster(opts.xdsAddr, opts.tls)] },
    dynamic_resources: buildDynamicResources(opts.token),
    admin: { address: socketAddress(opts.adminAddr) },
    layered_runtime: buildRuntime(),
  };
}

/**
 * Envoy refuses a config holding a regex whose RE2 program is larger than the runtime's
 * `re2.max_program_size.error_level` (100 by default). Intentions match SPIFFE IDs by regex, and
 * one with a long trust domain and service name (a UUID trust domain is 43 characters, a service
 * name up to 63) exceeds 100, so Envoy would reject the whole listener. Consul's bootstrap raises
 * the same limit; the patterns isthmus writes are anchored and linear, so the size only costs a
 * little memory.
 */
function buildRuntime(): BootstrapJson {
  return {
    layers: [
      {
        name: 'static_layer',
        static_layer: {
          're2.max_program_size.error_level': 1_048_576,
          're2.max_program_size.warn_level': 1_048_576,
        },
      },
      // Keeps Envoy's admin /runtime_modify working, as without a layered_runtime.
      { name: 'admin_layer', admin_layer: {} },
    ],
  };
}

function buildNode(opts: BootstrapOptions): BootstrapJson {
  return {
    id: opts.proxyId,
    cluster: opts.cluster ?? opts.proxyId,
    metadata: { isthmus_kind: opts.kind, isthmus_datacenter: opts.datacenter },
  };
}

/**
 * ADS is gRPC, so the cluster speaks HTTP/2; keepalive PINGs detect a dead server behind a NAT or
 * LB.
 */
function buildXdsCluster(
  addr: HostPort | readonly HostPort[],
  tls: BootstrapTls | undefined,
): BootstrapJson {
  const addrs: readonly HostPort[] = 'host' in addr ? [addr] : addr;
  // STATIC needs an IP literal; a name (docker-compose service, k8s Service) is resolved by DNS.
  const byName = addrs.some((a) => isIP(a.host) === 0);
  return {
    name: xdsClusterName,
    type: byName ? 'STRICT_DNS' : 'STATIC',
    // Envoy's default (AUTO) takes the IPv6 answer when there is one: `localhost` becomes ::1
    // even where /etc/hosts maps it to 127.0.0.1 only, and the server listens on 127.0.0.1 unless
    // told otherwise, so Envoy never connected. IPv4 first, IPv6 when a name has no IPv4 address.
    ...(byName ? { dns_lookup_family: 'V4_PREFERRED' } : {}),
    connect_timeout: '1s',
    typed_extension_protocol_options: {
      [httpProtocolOptionsType]: {
        '@type': `type.googleapis.com/${httpProtocolOptionsType}`,
        explicit_http_config: {
          http2_protocol_options: { connection_keepalive: { interval: '30s', timeout: '5s' } },
        },
      },
    },
    upstream_connection_options: { tcp_keepalive: {} },
    ...(tls ? { transport_socket: buildXdsTransportSocket(tls) } : {}),
    // Several servers: the ADS stream goes to one (round robin picks it); when that one fails,
    // Envoy keeps its config, retries the stream, and the next pick is another server.
    load_assignment: {
      cluster_name: xdsClusterName,
      endpoints: [
        { lb_endpoints: addrs.map((a) => ({ endpoint: { address: socketAddress(a) } })) },
      ],
    },
  };
}

/**
 * TLS to the xDS server: SNI and a DNS SAN match on the server name, the cluster's roots inline.
 * The roots are static in Envoy: a CA rotation keeps connected streams (TLS is verified once, at
 * connect), and a proxy started after the old root retires needs a bootstrap written since the
 * rotation began (docs/architecture.md §1, "The xDS port"). ALPN h2: grpc-js serves TLS through
 * Node's HTTP/2 server, which refuses a TLS connection that does not negotiate h2.
 */
function buildXdsTransportSocket(tls: BootstrapTls): BootstrapJson {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': `type.googleapis.com/${upstreamTlsContextType}`,
      sni: tls.serverName,
      common_tls_context: {
        alpn_protocols: ['h2'],
        validation_context: {
          trusted_ca: { inline_string: tls.caPem },
          match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: tls.serverName } }],
        },
      },
    },
  };
}

function buildDynamicResources(token: string | undefined): BootstrapJson {
  const grpcService = {
    envoy_grpc: { cluster_name: xdsClusterName },
    ...(token === undefined ? {} : { initial_metadata: [{ key: xdsTokenHeader, value: token }] }),
  };
  const viaAds = { ads: {}, resource_api_version: 'V3' };
  return {
    ads_config: {
      api_type: 'DELTA_GRPC',
      transport_api_version: 'V3',
      grpc_services: [grpcService],
      // The server keeps the node of a stream's first request (docs/architecture.md §7 rule 2).
      set_node_on_first_message_only: true,
    },
    cds_config: viaAds,
    lds_config: viaAds,
  };
}

/** `host` is bare (no IPv6 brackets), as `parseHostPort` returns it and SocketAddress wants it. */
function socketAddress(addr: HostPort): BootstrapJson {
  return { socket_address: { address: addr.host, port_value: addr.port } };
}
