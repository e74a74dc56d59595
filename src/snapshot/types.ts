/**
 * The config snapshot: isthmus's own intermediate representation of everything one proxy needs,
 * with no Envoy types (docs/architecture.md §2 "Snapshot"). Built by the per-kind builders,
 * consumed by the pure generators in src/xds/resources. Plain JSON-able data: generators key their
 * memo on it.
 */
import type {
  HashPolicy,
  HeaderModifiers,
  IntentionHttpMatch,
  Protocol,
  ResolverLoadBalancer,
  RouteHttpMatch,
} from '../catalog/types.js';

export interface SecretIR {
  readonly name: string;
}

export interface LeafSecretIR extends SecretIR {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface RootsSecretIR extends SecretIR {
  /** Concatenated PEM roots the holder trusts. */
  readonly pems: readonly string[];
}

export interface EndpointIR {
  readonly address: string;
  readonly port: number;
  readonly health: 'healthy' | 'degraded';
}

/** A cluster reached over mTLS with Envoy's own leaf (a sidecar upstream). */
export interface UpstreamTlsIR {
  readonly sni: string;
  readonly leafSecret: string;
  readonly rootsSecret: string;
  /** Exact URI SANs the peer certificate must carry (one of). */
  readonly spiffeIds: readonly string[];
}

export interface EdsClusterIR {
  readonly name: string;
  readonly protocol: Protocol;
  readonly connectTimeoutMs: number;
  readonly tls?: UpstreamTlsIR | undefined;
  readonly endpoints: readonly EndpointIR[];
  /**
   * Some endpoint is a hostname (a peer's gateway WAN address): Envoy resolves it, so the cluster
   * is STRICT_DNS (every host kept) with its load assignment inline instead of EDS.
   */
  readonly dns?: boolean | undefined;
  /**
   * Set on the clusters of a discovery chain (an upstream some `service-resolver` applies to):
   * they never spill to unhealthy hosts (Consul sets `healthy_panic_threshold` 0 on them), and
   * take their resolver's load balancer.
   */
  readonly chain?: { readonly loadBalancer?: ResolverLoadBalancer | undefined } | undefined;
}

/**
 * An upstream that fails over: Envoy's aggregate cluster over its targets' clusters, in order.
 * Envoy sends to the first member with healthy hosts, so traffic moves to the next target when
 * the one before has none left (unhealthy, critical or ejected) and back when it recovers
 * (docs/architecture.md "Discovery chain").
 */
export interface AggregateClusterIR {
  readonly aggregate: true;
  /** The name the primary target's cluster would have without failover (Consul's). */
  readonly name: string;
  readonly connectTimeoutMs: number;
  readonly members: readonly EdsClusterIR[];
}

/** The clusters an upstream needs: its own, or an aggregate's members; every route's for a router. */
export function upstreamEdsClusters(u: UpstreamIR): readonly EdsClusterIR[] {
  return (u.routed?.clusters ?? [u.cluster]).flatMap((c) => ('aggregate' in c ? c.members : [c]));
}

/** A cluster a route sends to, with its share in 1/10000 (Consul's scale). */
export interface WeightedClusterIR {
  readonly name: string;
  readonly weight: number;
  readonly requestHeaders?: HeaderModifiers | undefined;
  readonly responseHeaders?: HeaderModifiers | undefined;
}

/** One route of a router or splitter (docs/architecture.md §5b "Routers and splitters"). */
export interface RouteIR {
  /** Undefined: every request (prefix `/`). */
  readonly match?: RouteHttpMatch | undefined;
  /** One: the route's cluster; several: weighted; none yet known: Envoy answers 503. */
  readonly clusters: readonly WeightedClusterIR[];
  readonly prefixRewrite?: string | undefined;
  readonly timeoutMs?: number | undefined;
  readonly idleTimeoutMs?: number | undefined;
  readonly retry?:
    | {
        readonly numRetries: number;
        readonly retryOn: string;
        readonly retriableStatusCodes: readonly number[];
      }
    | undefined;
  readonly requestHeaders?: HeaderModifiers | undefined;
  readonly responseHeaders?: HeaderModifiers | undefined;
  /** The hash policies of the first split's resolver with a hash-based load balancer (Consul's). */
  readonly hashPolicies?: readonly HashPolicy[] | undefined;
}

export interface UpstreamIR {
  readonly listenerName: string;
  readonly bindAddress: string;
  readonly bindPort: number;
  /** The destination service name (stat prefixes, route names). */
  readonly service: string;
  readonly protocol: Protocol;
  /** What the listener (TCP) or route (HTTP) sends to. */
  readonly cluster: EdsClusterIR | AggregateClusterIR;
  /** RDS route configuration name, for HTTP-family protocols. */
  readonly routeName?: string | undefined;
  /** The route's timeout (a resolver's `RequestTimeout`), HTTP-family protocols only. */
  readonly requestTimeoutMs?: number | undefined;
  /** The route's hash policies (a resolver's ring_hash or maglev `HashPolicies`). */
  readonly hashPolicies?: readonly HashPolicy[] | undefined;
  /**
   * Set when a `service-router` or `service-splitter` applies: the routes of the route
   * configuration and every cluster they name (`cluster` is then the catch-all's first).
   */
  readonly routed?:
    | {
        readonly routes: readonly RouteIR[];
        readonly clusters: readonly (EdsClusterIR | AggregateClusterIR)[];
      }
    | undefined;
}

/** An RBAC principal: a URI SAN matching this regular expression (RE2, anchored). */
export interface PrincipalIR {
  readonly spiffeRegex: string;
  /**
   * Set for a peer's source: the SPIFFE pattern of our own mesh gateways. HTTP-family traffic from
   * a peer reaches the sidecar through our gateway, which terminates the peer's mTLS and names the
   * caller in `x-forwarded-client-cert`, so on an HTTP listener such a principal is "the
   * connection is from our gateway and the XFCC it set names the source" (Consul's rule).
   */
  readonly viaGatewayRegex?: string | undefined;
}

export interface RbacPolicyIR {
  readonly name: string;
  readonly principals: readonly PrincipalIR[];
  /** Principals that, when matched, exclude the connection from this policy (higher precedence). */
  readonly notPrincipals: readonly PrincipalIR[];
  /** An L7 intention's requests (any of them); absent: every connection or request. */
  readonly permissions?: readonly PermissionIR[] | undefined;
}

/**
 * One L7 permission of a policy: requests matching `match` and none of `notMatches`, the earlier
 * permissions of the same intention (first match wins, so an earlier one decides those requests).
 */
export interface PermissionIR {
  readonly match: IntentionHttpMatch;
  readonly notMatches: readonly IntentionHttpMatch[];
}

/** Envoy RBAC: `action` applies to connections matching any policy; others get the opposite. */
export interface RbacIR {
  readonly action: 'ALLOW' | 'DENY';
  readonly policies: readonly RbacPolicyIR[];
}

/** A trust domain and the roots its certificates must chain to (SPIFFE validator entry). */
export interface TrustDomainIR {
  readonly name: string;
  readonly pems: readonly string[];
}

/**
 * A validation-context secret for Envoy's SPIFFE validator: a client certificate is checked
 * against the roots of the trust domain in its URI SAN only. An SDS secret, not inline in the
 * listener, so a CA rotation or another peer's bundle changes the secret and never the listener
 * (Envoy drains and closes the connections of a filter chain that changes).
 */
export interface TrustDomainsSecretIR extends SecretIR {
  readonly trustDomains: readonly TrustDomainIR[];
}

export interface PublicListenerIR {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly leafSecret: string;
  /**
   * The validation-context secret callers are checked with: the local roots, or, when the service
   * is exported to peers, the sidecar's `inbound` SPIFFE secret (the local trust domain plus each
   * consuming peer's, docs/architecture.md §5).
   */
  readonly rootsSecret: string;
  readonly rbac: RbacIR;
  readonly localApp: {
    readonly clusterName: string;
    readonly address: string;
    readonly port: number;
  };
}

export interface SidecarSnapshot {
  readonly kind: 'connect-proxy';
  readonly proxyId: string;
  readonly service: string;
  readonly spiffeId: string;
  readonly leaf: LeafSecretIR;
  readonly roots: readonly RootsSecretIR[];
  /** The public listener's SPIFFE secret, when the service is exported to peers. */
  readonly inbound?: TrustDomainsSecretIR | undefined;
  readonly publicListener: PublicListenerIR;
  readonly upstreams: readonly UpstreamIR[];
}

/**
 * An HTTP-family service exported to a peer: the gateway terminates the peer's mTLS with its own
 * leaf (trusting that peer's trust domain, `rootsSecret`), routes, sets x-forwarded-client-cert,
 * and its cluster originates new mTLS to the local service (issue 5).
 */
export interface GatewayTerminationIR {
  readonly leafSecret: string;
  /** The SPIFFE secret of the consuming peer's trust domain. */
  readonly rootsSecret: string;
  readonly protocol: Protocol;
}

/**
 * A mesh gateway filter chain: exact SNI names (or one `*.<suffix>` wildcard) → a TCP pass-through
 * cluster. There is no catch-all: an SNI no chain names is refused (docs/architecture.md §5).
 */
export interface GatewayChainIR {
  readonly serverNames: readonly string[];
  readonly cluster: string;
  readonly statPrefix: string;
  /** Set: TLS ends here and HTTP is routed to `cluster` (which originates mTLS). */
  readonly terminate?: GatewayTerminationIR | undefined;
}

export interface GatewayListenerIR {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly chains: readonly GatewayChainIR[];
}

export interface MeshGatewaySnapshot {
  readonly kind: 'mesh-gateway';
  readonly proxyId: string;
  /**
   * One per bind address (`default`, the tagged addresses, `Proxy.Config` bind addresses), sorted
   * by name and never two on the same address and port; `wan` and `lan` carry only their side's
   * chains, the others both sides'. A listener may have no chain: it then refuses everything.
   */
  readonly listeners: readonly GatewayListenerIR[];
  /**
   * Plain TCP clusters (mesh TLS passes through the gateway), and mTLS ones for terminated chains.
   */
  readonly clusters: readonly EdsClusterIR[];
  /** The gateway's own identity and the local roots: only when some chain terminates TLS. */
  readonly leaf?: LeafSecretIR | undefined;
  readonly roots?: readonly RootsSecretIR[] | undefined;
  /** The SPIFFE secret of each peer whose mTLS some chain terminates, by name. */
  readonly peerInbound?: readonly TrustDomainsSecretIR[] | undefined;
}

export type ConfigSnapshot = SidecarSnapshot | MeshGatewaySnapshot;
