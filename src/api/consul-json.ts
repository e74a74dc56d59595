import { createHash } from 'node:crypto';
import type { ConfigRecord } from '../catalog/catalog.js';
import type {
  ConfigEntry,
  GatewayConfig,
  HealthCheck,
  MeshGatewayMode,
  ProxyConfig,
  ResolverTarget,
  IntentionPermission,
  HashPolicy,
  ServiceResolverEntry,
  ServiceInstance,
  Upstream,
} from '../catalog/types.js';
import type { PeeredFields } from '../peering/imported.js';
import { goDuration } from './go-duration.js';
import { serviceRouterJson, serviceSplitterJson } from './routing-json.js';

/**
 * The catalog model → Consul's JSON shapes (PascalCase, Consul's field names), so Consul users,
 * scripts and tools read isthmus responses as they read Consul's. isthmus has no agents: every
 * instance sits on one synthetic node named after the server's datacenter.
 */
export interface SyntheticNode {
  readonly ID: string;
  readonly Node: string;
  readonly Address: string;
  readonly Datacenter: string;
}

/** `isthmus-<dc>`, with a stable UUID derived from the name (same on every replica and restart). */
export function syntheticNode(datacenter: string): SyntheticNode {
  const name = `isthmus-${datacenter}`;
  const h = createHash('sha256').update(name).digest('hex');
  const id = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
  return { ID: id, Node: name, Address: '127.0.0.1', Datacenter: datacenter };
}

type Json = Record<string, unknown>;

function meshGatewayJson(mg: { readonly mode: MeshGatewayMode }): Json {
  return mg.mode === '' ? {} : { Mode: mg.mode };
}

function upstreamJson(u: Upstream): Json {
  return {
    DestinationType: 'service',
    DestinationName: u.destinationName,
    DestinationNamespace: u.destinationNamespace,
    DestinationPartition: u.destinationPeer ? '' : u.destinationPartition,
    ...(u.destinationPeer && { DestinationPeer: u.destinationPeer }),
    Datacenter: u.datacenter,
    LocalBindAddress: u.localBindAddress,
    LocalBindPort: u.localBindPort,
    MeshGateway: meshGatewayJson(u.meshGateway),
  };
}

/** `Proxy` of a connect-proxy; what Consul shows for other kinds when there is none. */
export function proxyJson(proxy: ProxyConfig | undefined, gateway?: GatewayConfig): Json {
  if (!proxy)
    return {
      Mode: '',
      MeshGateway: {},
      Expose: {},
      ...(gateway && { Config: gatewayConfigJson(gateway) }),
    };
  return {
    DestinationServiceName: proxy.destinationServiceName,
    DestinationServiceID: proxy.destinationServiceId,
    LocalServiceAddress: proxy.localServiceAddress,
    LocalServicePort: proxy.localServicePort,
    Mode: '',
    Upstreams: proxy.upstreams.map(upstreamJson),
    MeshGateway: meshGatewayJson(proxy.meshGateway),
    Expose: {},
  };
}

/** A gateway's bind settings as registered (`Proxy.Config`), under Consul's current key names. */
function gatewayConfigJson(g: GatewayConfig): Json {
  return {
    ...(g.bindTaggedAddresses && { envoy_gateway_bind_tagged_addresses: true }),
    ...(g.noDefaultBind && { envoy_gateway_no_default_bind: true }),
    ...(g.bindAddresses.length > 0 && {
      envoy_gateway_bind_addresses: Object.fromEntries(
        g.bindAddresses.map((b) => [b.name, { Address: b.address, Port: b.port }]),
      ),
    }),
  };
}

function taggedAddressesJson(i: ServiceInstance): Json | undefined {
  const out: Json = {};
  if (i.taggedAddresses.lan)
    out.lan = { Address: i.taggedAddresses.lan.address, Port: i.taggedAddresses.lan.port };
  if (i.taggedAddresses.wan)
    out.wan = { Address: i.taggedAddresses.wan.address, Port: i.taggedAddresses.wan.port };
  return Object.keys(out).length > 0 ? out : undefined;
}

const consulKind = (i: ServiceInstance): string => (i.kind === 'typical' ? '' : i.kind);

/** One element of `GET /v1/catalog/service/:name` (Consul's `CatalogService`). */
export function catalogServiceJson(i: ServiceInstance, node: SyntheticNode): Json {
  const tagged = taggedAddressesJson(i);
  return {
    ID: node.ID,
    Node: node.Node,
    Address: node.Address,
    Datacenter: i.datacenter,
    TaggedAddresses: { lan: node.Address, wan: node.Address },
    NodeMeta: {},
    ServiceKind: consulKind(i),
    ServiceID: i.id,
    ServiceName: i.name,
    ServiceTags: [...i.tags],
    ServiceAddress: i.address,
    ...(tagged && { ServiceTaggedAddresses: tagged }),
    ServiceWeights: { Passing: 1, Warning: 1 },
    ServiceMeta: { ...i.meta },
    ServicePort: i.port,
    ServiceEnableTagOverride: false,
    ServiceProxy: proxyJson(i.proxy, i.gatewayConfig),
    ServiceConnect: {},
    Namespace: i.namespace,
    Partition: i.partition,
    CreateIndex: i.createIndex,
    ModifyIndex: i.modifyIndex,
  };
}

/** The `Service` of a health entry (Consul's `NodeService`). */
export function nodeServiceJson(i: ServiceInstance & Partial<PeeredFields>): Json {
  const tagged = taggedAddressesJson(i);
  const peerMeta = i.peerMeta && {
    PeerMeta: {
      SNI: [...i.peerMeta.sni],
      SpiffeID: [...i.peerMeta.spiffeId],
      Protocol: i.peerMeta.protocol,
    },
  };
  return {
    ...(i.kind !== 'typical' && { Kind: i.kind }),
    ID: i.id,
    Service: i.name,
    Tags: [...i.tags],
    Address: i.address,
    ...(tagged && { TaggedAddresses: tagged }),
    Meta: { ...i.meta },
    Port: i.port,
    Weights: { Passing: 1, Warning: 1 },
    EnableTagOverride: false,
    Proxy: proxyJson(i.proxy, i.gatewayConfig),
    Connect: { ...peerMeta },
    ...(i.peerName && { PeerName: i.peerName }),
    Datacenter: i.datacenter,
    Namespace: i.namespace,
    Partition: i.partition,
    CreateIndex: i.createIndex,
    ModifyIndex: i.modifyIndex,
  };
}

export function healthCheckJson(c: HealthCheck, i: ServiceInstance, node: SyntheticNode): Json {
  return {
    Node: node.Node,
    CheckID: c.checkId,
    Name: c.name,
    Status: c.status,
    Notes: '',
    Output: c.output,
    ServiceID: i.id,
    ServiceName: i.name,
    ServiceTags: [...i.tags],
    Type: c.aliasOf === undefined ? 'ttl' : 'alias',
    Definition: c.ttlSeconds === undefined ? {} : { TTL: `${c.ttlSeconds}s` },
    Namespace: i.namespace,
    Partition: i.partition,
    CreateIndex: i.createIndex,
    ModifyIndex: i.modifyIndex,
  };
}

/** One element of `GET /v1/health/service/:name`. */
export function healthEntryJson(i: ServiceInstance, node: SyntheticNode): Json {
  return {
    Node: { ...node, TaggedAddresses: { lan: node.Address, wan: node.Address }, Meta: {} },
    Service: nodeServiceJson(i),
    Checks: i.checks.map((c) => healthCheckJson(c, i, node)),
  };
}

/** A config entry in Consul's shape; everything in it is accepted back by `PUT /v1/config`. */
export function configEntryJson(record: ConfigRecord): Json {
  return {
    ...entryFields(record.entry),
    CreateIndex: record.createIndex,
    ModifyIndex: record.modifyIndex,
  };
}

const nonDefault = (key: string, value: string): Json =>
  value && value !== 'default' ? { [key]: value } : {};

function entryFields(e: ConfigEntry): Json {
  switch (e.kind) {
    case 'proxy-defaults':
      return {
        Kind: e.kind,
        Name: e.name,
        Config: e.config.protocol ? { protocol: e.config.protocol } : {},
        MeshGateway: meshGatewayJson(e.meshGateway),
      };
    case 'service-defaults':
      return {
        Kind: e.kind,
        Name: e.name,
        Protocol: e.protocol,
        MeshGateway: meshGatewayJson(e.meshGateway),
      };
    case 'mesh':
      return {
        Kind: e.kind,
        Name: e.name,
        DefaultIntentionAction: e.defaultIntentionAction,
        Peering: { PeerThroughMeshGateways: e.peering.peerThroughMeshGateways },
      };
    case 'service-intentions':
      return {
        Kind: e.kind,
        Name: e.name,
        Sources: e.sources.map((s) => ({
          Name: s.name,
          ...nonDefault('Namespace', s.namespace),
          ...(s.peer ? { Peer: s.peer } : nonDefault('Partition', s.partition)),
          ...(s.permissions
            ? { Permissions: s.permissions.map(intentionPermissionJson) }
            : { Action: s.action }),
          Type: 'consul',
        })),
      };
    case 'exported-services':
      return {
        Kind: e.kind,
        Name: e.name,
        Services: e.services.map((s) => ({
          Name: s.name,
          ...nonDefault('Namespace', s.namespace),
          Consumers: s.consumers.map((c) =>
            'peer' in c ? { Peer: c.peer } : { SamenessGroup: c.samenessGroup },
          ),
        })),
      };
    case 'service-resolver':
      return serviceResolverJson(e);
    case 'service-splitter':
      return serviceSplitterJson(e);
    case 'service-router':
      return serviceRouterJson(e);
    case 'sameness-group':
      return {
        Kind: e.kind,
        Name: e.name,
        ...(e.defaultForFailover ? { DefaultForFailover: true } : {}),
        ...(e.includeLocal ? { IncludeLocal: true } : {}),
        Members: e.members.map((m) =>
          'peer' in m ? { Peer: m.peer } : { Partition: m.partition },
        ),
      };
  }
}

/** An L7 permission in Consul's shape, only the fields that are set. */
function intentionPermissionJson(perm: IntentionPermission): Json {
  const h = perm.http;
  return {
    Action: perm.action,
    HTTP: {
      ...(h.pathExact !== undefined && { PathExact: h.pathExact }),
      ...(h.pathPrefix !== undefined && { PathPrefix: h.pathPrefix }),
      ...(h.pathRegex !== undefined && { PathRegex: h.pathRegex }),
      ...(h.header.length > 0 && {
        Header: h.header.map((m) => ({
          Name: m.name,
          ...(m.present && { Present: true }),
          ...(m.exact !== undefined && { Exact: m.exact }),
          ...(m.prefix !== undefined && { Prefix: m.prefix }),
          ...(m.suffix !== undefined && { Suffix: m.suffix }),
          ...(m.regex !== undefined && { Regex: m.regex }),
          ...(m.invert && { Invert: true }),
        })),
      }),
      ...(h.methods.length > 0 && { Methods: h.methods }),
    },
  };
}

/** Only the fields that are set, so what `config read` prints is what was written. */
function serviceResolverJson(e: ServiceResolverEntry): Json {
  const subsets = Object.entries(e.subsets);
  const failover = Object.entries(e.failover);
  const lb = e.loadBalancer;
  return {
    Kind: e.kind,
    Name: e.name,
    ...(e.defaultSubset ? { DefaultSubset: e.defaultSubset } : {}),
    ...(subsets.length > 0 && {
      Subsets: Object.fromEntries(
        subsets.map(([name, s]) => [
          name,
          {
            ...(s.filter ? { Filter: s.filter } : {}),
            ...(s.onlyPassing ? { OnlyPassing: true } : {}),
          },
        ]),
      ),
    }),
    ...(e.redirect && { Redirect: resolverTargetJson(e.redirect) }),
    ...(failover.length > 0 && {
      Failover: Object.fromEntries(
        failover.map(([key, f]) => [
          key,
          f.samenessGroup
            ? { SamenessGroup: f.samenessGroup }
            : { Targets: f.targets.map(resolverTargetJson) },
        ]),
      ),
    }),
    ...(e.connectTimeoutMs ? { ConnectTimeout: goDuration(e.connectTimeoutMs) } : {}),
    ...(e.requestTimeoutMs ? { RequestTimeout: goDuration(e.requestTimeoutMs) } : {}),
    ...(lb && {
      LoadBalancer: {
        Policy: lb.policy,
        ...(lb.ringHash && {
          RingHashConfig: {
            ...(lb.ringHash.minimumRingSize
              ? { MinimumRingSize: lb.ringHash.minimumRingSize }
              : {}),
            ...(lb.ringHash.maximumRingSize
              ? { MaximumRingSize: lb.ringHash.maximumRingSize }
              : {}),
          },
        }),
        ...(lb.leastRequest && {
          LeastRequestConfig: lb.leastRequest.choiceCount
            ? { ChoiceCount: lb.leastRequest.choiceCount }
            : {},
        }),
        ...(lb.hashPolicies && { HashPolicies: lb.hashPolicies.map(hashPolicyJson) }),
      },
    }),
  };
}

function hashPolicyJson(h: HashPolicy): Json {
  const c = h.cookieConfig;
  return {
    ...(h.field ? { Field: h.field, FieldValue: h.fieldValue } : {}),
    ...(c && {
      CookieConfig: {
        ...(c.session ? { Session: true } : {}),
        ...(c.ttlMs ? { TTL: goDuration(c.ttlMs) } : {}),
        ...(c.path ? { Path: c.path } : {}),
      },
    }),
    ...(h.sourceIp ? { SourceIP: true } : {}),
    ...(h.terminal ? { Terminal: true } : {}),
  };
}

function resolverTargetJson(t: ResolverTarget): Json {
  return {
    ...(t.service ? { Service: t.service } : {}),
    ...(t.serviceSubset ? { ServiceSubset: t.serviceSubset } : {}),
    ...(t.datacenter ? { Datacenter: t.datacenter } : {}),
    ...(t.peer ? { Peer: t.peer } : {}),
  };
}
