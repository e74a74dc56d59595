import { Listener } from '../../gen/envoy/config/listener/v3/listener.js';
import type {
  Filter,
  FilterChain,
} from '../../gen/envoy/config/listener/v3/listener_components.js';
import { TrafficDirection } from '../../gen/envoy/config/core/v3/base.js';
import { DownstreamTlsContext } from '../../gen/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { RBAC as NetworkRbac } from '../../gen/envoy/extensions/filters/network/rbac/v3/rbac.js';
import { RBAC_Action } from '../../gen/envoy/config/rbac/v3/rbac.js';
import { TcpProxy } from '../../gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.js';
import { TlsInspector } from '../../gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.js';
import type {
  GatewayChainIR,
  GatewayListenerIR,
  PublicListenerIR,
  UpstreamIR,
} from '../../snapshot/types.js';
import { packAny } from '../../proto-any.js';
import { TypeUrl } from '../types.js';
import { sdsSecret, socketAddress, spec, statPrefix, type ResourceSpec } from './common.js';
import { httpConnectionManager, isHttp } from './http.js';
import { httpRbacFilter, rbacFilter } from './rbac.js';

/** LDS, piece by piece (see pieces.ts): a sidecar's public listener. */
export function publicListenerSpec(pl: PublicListenerIR): ResourceSpec {
  return spec(TypeUrl.listener, pl.name, pl, () => buildPublicListener(pl));
}

export function upstreamListenerSpec(u: UpstreamIR): ResourceSpec {
  const { cluster, ...rest } = u;
  return spec(TypeUrl.listener, u.listenerName, { ...rest, cluster: cluster.name }, () =>
    buildUpstreamListener(u),
  );
}

function typed(name: string, message: Parameters<typeof packAny>[0]): Filter {
  return { name, configType: { $case: 'typedConfig', value: packAny(message) } } as Filter;
}

function tcpProxy(prefix: string, cluster: string): Filter {
  const config = TcpProxy.fromPartial({
    statPrefix: statPrefix(prefix),
    clusterSpecifier: { $case: 'cluster', value: cluster },
  });
  return typed('envoy.filters.network.tcp_proxy', config);
}

/**
 * Inbound: mTLS requiring a client certificate from a trusted root (the local roots, or the SPIFFE
 * secret over ours and the consuming peers' trust domains), intentions as RBAC, then the local
 * application (docs/architecture.md §5).
 */
function buildPublicListener(pl: PublicListenerIR): Listener {
  const tls = DownstreamTlsContext.fromPartial({
    requireClientCertificate: true,
    commonTlsContext: {
      tlsParams: { tlsMinimumProtocolVersion: 3 /* TLSv1_2 */ },
      tlsCertificateSdsSecretConfigs: [sdsSecret(pl.leafSecret)],
      validationContextType: {
        $case: 'validationContextSdsSecretConfig',
        value: sdsSecret(pl.rootsSecret),
      },
    },
  });
  // HTTP-family traffic is authorized per request (403 to the caller); TCP per connection.
  const filters = isHttp(pl.protocol)
    ? [
        httpConnectionManager(
          'public_listener',
          { inline: { cluster: pl.localApp.clusterName } },
          pl.protocol,
          {
            xfcc: 'append-forward',
            filters: [httpRbacFilter(pl.rbac)],
            normalizePath: pl.rbac.policies.some((p) => p.permissions),
          },
        ),
      ]
    : [rbacFilter(pl.rbac), tcpProxy('public_listener', pl.localApp.clusterName)];
  const chain: FilterChain = {
    filters,
    transportSocket: {
      name: 'envoy.transport_sockets.tls',
      configType: { $case: 'typedConfig', value: packAny(tls) },
    },
  } as FilterChain;
  return Listener.fromPartial({
    name: pl.name,
    address: socketAddress(pl.address, pl.port),
    trafficDirection: TrafficDirection.INBOUND,
    filterChains: [chain],
  });
}

function buildUpstreamListener(u: UpstreamIR): Listener {
  const filter =
    isHttp(u.protocol) && u.routeName
      ? httpConnectionManager(`upstream.${u.service}`, { rds: u.routeName }, u.protocol)
      : tcpProxy(`upstream.${u.service}`, u.cluster.name);
  return Listener.fromPartial({
    name: u.listenerName,
    address: socketAddress(u.bindAddress, u.bindPort),
    trafficDirection: TrafficDirection.OUTBOUND,
    filterChains: [{ filters: [filter] }],
  });
}

/**
 * A gateway listener: TLS inspector, then one chain per routed SNI. No chain has an empty match, so
 * an SNI (or a connection without one) that no chain names matches nothing and Envoy closes it. A
 * listener with nothing to route gets only `refuseEverything` as its default chain: Envoy refuses
 * a listener without any chain, and the port stays bound.
 */
export function gatewayListenerSpec(l: GatewayListenerIR): ResourceSpec {
  return spec(TypeUrl.listener, l.name, l, () =>
    Listener.fromPartial({
      name: l.name,
      address: socketAddress(l.address, l.port),
      trafficDirection: TrafficDirection.UNSPECIFIED,
      listenerFilters: [
        {
          name: 'envoy.filters.listener.tls_inspector',
          configType: { $case: 'typedConfig', value: packAny(TlsInspector.fromPartial({})) },
        },
      ],
      filterChains: l.chains.map(memoGatewayChain),
      ...(l.chains.length === 0 ? { defaultFilterChain: refuseEverything() } : {}),
    }),
  );
}

/**
 * A chain that closes every connection and sends nothing: a network RBAC filter that allows no one
 * (ALLOW with no policy), then the terminal `tcp_proxy` Envoy requires last, to no cluster.
 */
function refuseEverything(): FilterChain {
  const rbac = NetworkRbac.fromPartial({
    statPrefix: 'mesh_gateway_refused',
    rules: { action: RBAC_Action.ALLOW, policies: {} },
  });
  return {
    filters: [typed('envoy.filters.network.rbac', rbac), tcpProxy('mesh_gateway_refused', '')],
  } as FilterChain;
}

/**
 * A chain's message, built once per chain object: the IR is immutable and a gateway keeps the
 * chains of the parts a change did not touch (docs/architecture.md §2 "Incremental builds"), so a
 * gateway listener rebuilt for one new chain builds that chain alone.
 */
const builtChains = new WeakMap<GatewayChainIR, FilterChain>();

function memoGatewayChain(c: GatewayChainIR): FilterChain {
  let built = builtChains.get(c);
  if (!built) builtChains.set(c, (built = gatewayChain(c)));
  return built;
}

/**
 * The gateway never terminates mesh TLS for TCP: it reads the SNI and passes bytes through. For an
 * HTTP-family export it terminates the peer's mTLS (client certificate required, checked by the
 * SPIFFE validator in the peer's SDS secret) and routes HTTP with x-forwarded-client-cert set.
 */
function gatewayChain(c: GatewayChainIR): FilterChain {
  if (c.terminate) {
    const t = c.terminate;
    const tls = DownstreamTlsContext.fromPartial({
      requireClientCertificate: true,
      commonTlsContext: {
        tlsParams: { tlsMinimumProtocolVersion: 3 /* TLSv1_2 */ },
        tlsCertificateSdsSecretConfigs: [sdsSecret(t.leafSecret)],
        validationContextType: {
          $case: 'validationContextSdsSecretConfig',
          value: sdsSecret(t.rootsSecret),
        },
      },
    });
    return {
      filterChainMatch: { serverNames: [...c.serverNames] },
      filters: [
        httpConnectionManager(c.statPrefix, { inline: { cluster: c.cluster } }, t.protocol, {
          xfcc: 'sanitize-set',
        }),
      ],
      transportSocket: {
        name: 'envoy.transport_sockets.tls',
        configType: { $case: 'typedConfig', value: packAny(tls) },
      },
    } as FilterChain;
  }
  return {
    filterChainMatch: { serverNames: [...c.serverNames] },
    filters: [tcpProxy(c.statPrefix, c.cluster)],
  } as FilterChain;
}
