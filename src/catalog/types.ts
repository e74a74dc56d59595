/**
 * The catalog's internal model (camelCase). The HTTP API speaks Consul's PascalCase JSON and
 * converts at the boundary (src/api). Values are readonly: they flow into snapshots unchanged.
 */
import type { ServiceRouterEntry, ServiceSplitterEntry } from './routing-types.js';

export type {
  HeaderMatch,
  HeaderModifiers,
  QueryParamMatch,
  RouteDestination,
  RouteHttpMatch,
  ServiceRoute,
  ServiceRouterEntry,
  ServiceSplit,
  ServiceSplitterEntry,
} from './routing-types.js';

export type ServiceKind = 'typical' | 'connect-proxy' | 'mesh-gateway';
export type HealthStatus = 'passing' | 'warning' | 'critical';
export type MeshGatewayMode = '' | 'none' | 'local' | 'remote';

export interface ServiceAddress {
  readonly address: string;
  readonly port: number;
}

export interface Upstream {
  readonly destinationName: string;
  readonly destinationNamespace: string;
  readonly destinationPartition: string;
  /** Set for an upstream imported from a cluster peer (the local name of the peering). */
  readonly destinationPeer: string;
  /** Empty: the local datacenter. */
  readonly datacenter: string;
  readonly localBindAddress: string;
  readonly localBindPort: number;
  readonly meshGateway: { readonly mode: MeshGatewayMode };
}

export interface ProxyConfig {
  readonly destinationServiceName: string;
  readonly destinationServiceId: string;
  readonly localServiceAddress: string;
  readonly localServicePort: number;
  readonly upstreams: readonly Upstream[];
  readonly meshGateway: { readonly mode: MeshGatewayMode };
}

/** A named extra listener address of a mesh gateway (`envoy_mesh_gateway_bind_addresses`). */
export interface GatewayBindAddress {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/**
 * Where a mesh gateway's listeners bind: the keys of Consul's opaque `Proxy.Config` that isthmus
 * reads for a gateway (Consul `agent/xds/config.go` `GatewayConfig`). Absent: one `default`
 * listener.
 */
export interface GatewayConfig {
  /** One more listener per tagged address (`lan:…`, `wan:…`). */
  readonly bindTaggedAddresses: boolean;
  /** No `default:…` listener. */
  readonly noDefaultBind: boolean;
  /** One more listener per entry (`<name>:…`), sorted by name. */
  readonly bindAddresses: readonly GatewayBindAddress[];
}

export interface HealthCheck {
  readonly checkId: string;
  readonly name: string;
  readonly serviceId: string;
  readonly status: HealthStatus;
  readonly output: string;
  /** TTL checks turn critical when not updated within ttlSeconds. */
  readonly ttlSeconds?: number | undefined;
  /** Epoch ms at which a TTL check expires (persisted so expiry survives restarts). */
  readonly expiresAt?: number | undefined;
  /**
   * An alias check (Consul's default check of a `Connect` sidecar): its status follows the health
   * of the instance with this ID, so a sidecar is unhealthy when its service is.
   */
  readonly aliasOf?: string | undefined;
}

export interface ServiceInstance {
  readonly id: string;
  readonly name: string;
  readonly kind: ServiceKind;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly namespace: string;
  readonly partition: string;
  /** The datacenter the instance runs in (a remote one for gateways of other datacenters). */
  readonly datacenter: string;
  readonly taggedAddresses: {
    readonly lan?: ServiceAddress | undefined;
    readonly wan?: ServiceAddress | undefined;
  };
  readonly proxy?: ProxyConfig | undefined;
  /** Mesh gateways only, and only when `Proxy.Config` asks for other listeners than the default. */
  readonly gatewayConfig?: GatewayConfig | undefined;
  readonly checks: readonly HealthCheck[];
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** Aggregated health of an instance: the worst of its checks (no checks = passing). */
export function instanceHealth(instance: ServiceInstance): HealthStatus {
  if (instance.checks.some((c) => c.status === 'critical')) return 'critical';
  if (instance.checks.some((c) => c.status === 'warning')) return 'warning';
  return 'passing';
}

/** Changes the snapshot layer reacts to; discriminated by `kind`. */
export type CatalogEvent =
  | {
      readonly kind: 'instance-upserted';
      readonly instance: ServiceInstance;
      readonly previous?: ServiceInstance | undefined;
    }
  | { readonly kind: 'instance-removed'; readonly instance: ServiceInstance }
  | {
      readonly kind: 'config-entry-changed';
      readonly entryKind: ConfigEntryKind;
      readonly name: string;
    };

export type ConfigEntryKind =
  | 'proxy-defaults'
  | 'service-defaults'
  | 'mesh'
  | 'service-intentions'
  | 'exported-services'
  | 'service-resolver'
  | 'service-splitter'
  | 'service-router'
  | 'sameness-group';
export type Protocol = 'tcp' | 'http' | 'http2' | 'grpc';

export interface ProxyDefaultsEntry {
  readonly kind: 'proxy-defaults';
  readonly name: 'global';
  readonly config: { readonly protocol?: Protocol | undefined };
  readonly meshGateway: { readonly mode: MeshGatewayMode };
}

export interface ServiceDefaultsEntry {
  readonly kind: 'service-defaults';
  readonly name: string;
  readonly namespace: string;
  readonly partition: string;
  readonly protocol: Protocol;
  readonly meshGateway: { readonly mode: MeshGatewayMode };
}

export interface MeshEntry {
  readonly kind: 'mesh';
  readonly name: 'mesh';
  /** Whether traffic with no matching intention is allowed (Consul: default allow w/o ACLs). */
  readonly defaultIntentionAction: 'allow' | 'deny';
  readonly peering: { readonly peerThroughMeshGateways: boolean };
}

export interface IntentionSource {
  readonly name: string; // service name or '*'
  readonly namespace: string;
  readonly partition: string;
  /** Set when the source is a service of a cluster peer. */
  readonly peer: string;
  /** An L4 intention's verdict; absent when `permissions` decide (an L7 intention). */
  readonly action?: 'allow' | 'deny' | undefined;
  /** An L7 intention: per-request verdicts, first match wins (HTTP-family destinations only). */
  readonly permissions?: readonly IntentionPermission[] | undefined;
}

/** One L7 permission of an intention (Consul's `IntentionPermission`, JWT-free). */
export interface IntentionPermission {
  readonly action: 'allow' | 'deny';
  readonly http: IntentionHttpMatch;
}

/** What a request must match, all parts together (Consul's `IntentionHTTPPermission`). */
export interface IntentionHttpMatch {
  /** At most one of the three path matches. */
  readonly pathExact?: string | undefined;
  readonly pathPrefix?: string | undefined;
  readonly pathRegex?: string | undefined;
  readonly header: readonly IntentionHeaderMatch[];
  /** Upper case; any of them. Empty: any method. */
  readonly methods: readonly string[];
}

/** A header match: exactly one of present/exact/prefix/suffix/regex; `invert` negates it. */
export interface IntentionHeaderMatch {
  readonly name: string;
  readonly present?: boolean | undefined;
  readonly exact?: string | undefined;
  readonly prefix?: string | undefined;
  readonly suffix?: string | undefined;
  readonly regex?: string | undefined;
  readonly invert: boolean;
}

export interface ServiceIntentionsEntry {
  readonly kind: 'service-intentions';
  /** The destination service, or '*'. */
  readonly name: string;
  readonly namespace: string;
  readonly partition: string;
  readonly sources: readonly IntentionSource[];
}

export interface ExportedServicesEntry {
  readonly kind: 'exported-services';
  /** The partition name ('default'). */
  readonly name: string;
  readonly services: readonly {
    readonly name: string; // or '*'
    readonly namespace: string;
    readonly consumers: readonly ExportConsumer[];
  }[];
}

/** A consumer of an exported service: a peer, or every peer member of a sameness group. */
export type ExportConsumer = { readonly peer: string } | { readonly samenessGroup: string };

/**
 * A place a `service-resolver` sends traffic: a service (or one of its subsets) here, in another
 * datacenter, or on a cluster peer. Empty strings mean "the resolver's own" (service) or "none".
 */
export interface ResolverTarget {
  readonly service: string;
  readonly serviceSubset: string;
  /** The local name of a peering; empty for this cluster. */
  readonly peer: string;
  /** Empty: the datacenter of the upstream. */
  readonly datacenter: string;
}

/** A named subset of a service's instances (Consul's bexpr `Filter`, the subset isthmus reads). */
export interface ResolverSubset {
  /** The filter as written (shown back by `config read`). */
  readonly filter: string;
  readonly onlyPassing: boolean;
}

export type LoadBalancerPolicy =
  | 'round_robin'
  | 'least_request'
  | 'ring_hash'
  | 'maglev'
  | 'random';

export interface ResolverLoadBalancer {
  readonly policy: LoadBalancerPolicy;
  readonly ringHash?:
    | {
        readonly minimumRingSize?: number | undefined;
        readonly maximumRingSize?: number | undefined;
      }
    | undefined;
  readonly leastRequest?: { readonly choiceCount?: number | undefined } | undefined;
  /** Only with `ring_hash` or `maglev`: what Envoy hashes to pick an instance, in order. */
  readonly hashPolicies?: readonly HashPolicy[] | undefined;
}

/**
 * One of a resolver's `LoadBalancer.HashPolicies` (Consul's `HashPolicy`): a header, cookie or
 * query parameter named by `fieldValue`, or the caller's source IP.
 */
export interface HashPolicy {
  /** Empty with `sourceIp`. */
  readonly field: '' | 'header' | 'cookie' | 'query_parameter';
  readonly fieldValue: string;
  /** Only for `cookie`: Envoy then sets the cookie when the request has none. */
  readonly cookieConfig?:
    | { readonly session: boolean; readonly ttlMs: number; readonly path: string }
    | undefined;
  readonly sourceIp: boolean;
  /** A hash computed by this policy ends the list (Envoy's `terminal`). */
  readonly terminal: boolean;
}

/** One `Failover` rule: targets in order, or the members of a sameness group in its order. */
export interface ResolverFailover {
  readonly targets: readonly ResolverTarget[];
  /** Set instead of targets: fail over through this group's members. */
  readonly samenessGroup?: string | undefined;
}

/** A member of a sameness group: this cluster's (only) partition, or a cluster peer. */
export type SamenessMember = { readonly partition: string } | { readonly peer: string };

/**
 * `sameness-group` (Consul's JSON shape, docs/architecture.md §5b "Sameness groups"): peers that
 * serve the same services, in failover order.
 */
export interface SamenessGroupEntry {
  readonly kind: 'sameness-group';
  readonly name: string;
  /** Upstreams without a failover rule of their own fail over through this group. */
  readonly defaultForFailover: boolean;
  /** This cluster is the group's first member. */
  readonly includeLocal: boolean;
  readonly members: readonly SamenessMember[];
}

/** `service-resolver` (Consul's JSON shape; docs/architecture.md "Discovery chain"). */
export interface ServiceResolverEntry {
  readonly kind: 'service-resolver';
  readonly name: string;
  readonly namespace: string;
  readonly partition: string;
  /** Empty: every instance. */
  readonly defaultSubset: string;
  readonly subsets: Readonly<Record<string, ResolverSubset>>;
  readonly redirect?: ResolverTarget | undefined;
  /** By subset name, or `*` for any subset; targets in order. */
  readonly failover: Readonly<Record<string, ResolverFailover>>;
  /** 0: the default (5 s). */
  readonly connectTimeoutMs: number;
  /** 0: Envoy's default. HTTP-family upstreams only. */
  readonly requestTimeoutMs: number;
  readonly loadBalancer?: ResolverLoadBalancer | undefined;
}

export type ConfigEntry =
  | ProxyDefaultsEntry
  | ServiceDefaultsEntry
  | MeshEntry
  | ServiceIntentionsEntry
  | ExportedServicesEntry
  | ServiceResolverEntry
  | ServiceSplitterEntry
  | ServiceRouterEntry
  | SamenessGroupEntry;

/**
 * What the snapshot layer reads: synchronous lookups over the catalog's in-memory index (kept in
 * step with the Store), plus change events.
 */
export interface CatalogReader {
  instance(id: string): ServiceInstance | undefined;
  /** Every instance of a service (any kind with that name), sorted by id. */
  instancesOf(name: string, namespace?: string, partition?: string): readonly ServiceInstance[];
  /** Connect proxies whose destination is the named service, sorted by id. */
  sidecarsOf(name: string, namespace?: string, partition?: string): readonly ServiceInstance[];
  /** Every instance of a kind, sorted by id (e.g. all mesh gateways). */
  instancesOfKind(kind: ServiceKind): readonly ServiceInstance[];
  allInstances(): readonly ServiceInstance[];
  configEntry<K extends ConfigEntryKind>(
    kind: K,
    name: string,
  ): Extract<ConfigEntry, { kind: K }> | undefined;
  configEntries<K extends ConfigEntryKind>(kind: K): readonly Extract<ConfigEntry, { kind: K }>[];
  /** Calls `listener` after every committed change; returns the unsubscribe function. */
  subscribe(listener: (event: CatalogEvent) => void): () => void;
}
