/**
 * Every SNI, SPIFFE ID, and cluster / listener / secret name isthmus produces, and nowhere else
 * (docs/architecture.md §4). The forms are Consul's, so Envoy stats and dashboards read the same.
 */

export const defaultNamespace = 'default';
export const defaultPartition = 'default';

/** A service's identity within its cluster. */
export interface ServiceName {
  readonly name: string;
  readonly namespace?: string;
  readonly partition?: string;
}

const ns = (s: ServiceName) => s.namespace || defaultNamespace;
const ap = (s: ServiceName) => s.partition || defaultPartition;
const isDefaultPartition = (s: ServiceName) => ap(s) === defaultPartition;

/** `<cluster-uuid>.consul`: the trust domain of a cluster. */
export function trustDomainFor(clusterId: string): string {
  return `${clusterId}.consul`;
}

/**
 * `spiffe://<td>/ns/<ns>/dc/<dc>/svc/<svc>` (`/ap/<ap>` first when the partition is not default).
 */
export function serviceSpiffeId(td: string, dc: string, s: ServiceName): string {
  const partition = isDefaultPartition(s) ? '' : `/ap/${ap(s)}`;
  return `spiffe://${td}${partition}/ns/${ns(s)}/dc/${dc}/svc/${s.name}`;
}

/** `spiffe://<td>/gateway/mesh/dc/<dc>` */
export function meshGatewaySpiffeId(td: string, dc: string): string {
  return `spiffe://${td}/gateway/mesh/dc/${dc}`;
}

/** The CA root's URI SAN: `spiffe://<td>`. */
export function rootSpiffeId(td: string): string {
  return `spiffe://${td}`;
}

/**
 * SNI of a local service, and the name of its cluster in sidecars and gateways:
 * `<svc>.<ns>.<dc>.internal.<td>`, or `<svc>.<ns>.<ap>.<dc>.internal-v1.<td>` outside the default
 * partition.
 */
export function serviceSni(td: string, dc: string, s: ServiceName): string {
  if (isDefaultPartition(s)) return `${s.name}.${ns(s)}.${dc}.internal.${td}`;
  return `${s.name}.${ns(s)}.${ap(s)}.${dc}.internal-v1.${td}`;
}

/** SNI and cluster name of a subset of a local service: `<subset>.<service SNI>` (Consul's). */
export function subsetSni(td: string, dc: string, s: ServiceName, subset: string): string {
  const sni = serviceSni(td, dc, s);
  return subset ? `${subset}.${sni}` : sni;
}

/**
 * A discovery-chain target's ID (Consul `structs.ChainID`): `[<subset>.]<svc>.<ns>.<ap>.<dc>`, or
 * `<svc>.<ns>.<ap>.external.<peer>` for a peer's service.
 */
export function chainTargetId(
  s: ServiceName,
  target: { readonly subset: string; readonly datacenter: string; readonly peer: string },
): string {
  if (target.peer) return `${s.name}.${ns(s)}.${ap(s)}.external.${target.peer}`;
  const id = `${s.name}.${ns(s)}.${ap(s)}.${target.datacenter}`;
  return target.subset ? `${target.subset}.${id}` : id;
}

/**
 * The cluster of the `index`th target (0: the primary) of an upstream that fails over:
 * `failover-target~<index>~<primary cluster>`, under an aggregate cluster named as the primary
 * would be (Consul agent/xds `discoChainTargets.sequential`).
 */
export function failoverTargetClusterName(index: number, primaryCluster: string): string {
  return `failover-target~${index}~${primaryCluster}`;
}

/** SNI that routes to a remote datacenter's mesh gateways: `<dc>.internal.<td>`. */
export function datacenterSni(td: string, dc: string): string {
  return `${dc}.internal.${td}`;
}

/** Gateway `server_names` wildcard for everything in one datacenter: `*.<dc>.internal.<td>`. */
export function datacenterWildcardSni(td: string, dc: string): string {
  return `*.${datacenterSni(td, dc)}`;
}

/**
 * SNI of a service exported to a peer: `<svc>.<ns>.<ap>.<peer>.external.<td>`, where `<peer>` is
 * the exporter's name for the importing cluster and `<td>` the exporter's trust domain.
 */
export function peeredServiceSni(exporterTd: string, peerName: string, s: ServiceName): string {
  return `${s.name}.${ns(s)}.${ap(s)}.${peerName}.external.${exporterTd}`;
}

/** The importer's sidecar cluster for a peered upstream: `<svc>.<ns>.<peer>.external.<peer-td>`. */
export function peeredUpstreamClusterName(
  peerTd: string,
  localPeerName: string,
  s: ServiceName,
): string {
  return `${s.name}.${ns(s)}.${localPeerName}.external.${peerTd}`;
}

/** Exporting gateway cluster of local instances exported to peers: `exported~<local sni>`. */
export function exportedClusterName(td: string, dc: string, s: ServiceName): string {
  return `exported~${serviceSni(td, dc, s)}`;
}

/** TLS name of the peering server: `server.<dc>.peering.<td>`. */
export function peeringServerName(td: string, dc: string): string {
  return `server.${dc}.peering.${td}`;
}

/**
 * Identity of a cluster's peering server: its TLS server certificate on the peering port (DNS SAN
 * `peeringServerName`) and its client certificate when it dials a peer:
 * `spiffe://<td>/peering/server/dc/<dc>`.
 */
export function peeringServerSpiffeId(td: string, dc: string): string {
  return `spiffe://${td}/peering/server/dc/${dc}`;
}

export const localAppClusterName = 'local_app';

export function publicListenerName(address: string, port: number): string {
  return `public_listener:${address}:${port}`;
}

/** `<svc>:<addr>:<port>`, or `<svc>?peer=<peer>:<addr>:<port>` for a peered upstream. */
export function upstreamListenerName(
  service: string,
  address: string,
  port: number,
  peer?: string,
): string {
  return peer ? `${service}?peer=${peer}:${address}:${port}` : `${service}:${address}:${port}`;
}

/**
 * `default:<addr>:<port>`; `lan:` / `wan:` for the tagged-address bind variants, `<name>:` for a
 * `Proxy.Config` bind address.
 */
export function meshGatewayListenerName(
  address: string,
  port: number,
  variant: 'default' | 'lan' | 'wan' | (string & {}) = 'default',
): string {
  return `${variant}:${address}:${port}`;
}

/** SDS secret of a proxy identity's leaf certificate. */
export function leafSecretName(spiffeId: string): string {
  return `leaf:${spiffeId}`;
}

/** SDS validation-context secret of the local roots. */
export const localRootsSecretName = 'roots:local';

/** SDS validation-context secret of a peer's trust bundle. */
export function peerBundleSecretName(peerName: string): string {
  return `roots:peer:${peerName}`;
}

/**
 * SDS validation-context secret (SPIFFE validator) of a sidecar's public listener when its service
 * is exported to peers: the local trust domain and each consuming peer's.
 */
export const inboundRootsSecretName = 'roots:inbound';

/**
 * SDS validation-context secret (SPIFFE validator) of a mesh gateway terminating a peer's mTLS:
 * that peer's trust domain.
 */
export function peerInboundSecretName(peerName: string): string {
  return `roots:inbound:peer:${peerName}`;
}

/** RDS route configuration of an HTTP upstream listener: the upstream service name. */
export function upstreamRouteName(service: string, peer?: string): string {
  return peer ? `${service}?peer=${peer}` : service;
}

/**
 * The TLS name of every xDS server (docs/architecture.md §1, "The xDS port"): the DNS SAN of its
 * certificate, the SNI Envoy sends and the name it verifies. One fixed name, so a bootstrap needs no
 * knowledge of the cluster beyond its CA roots, which are what make the name mean this cluster.
 */
export const xdsServerName = 'xds.isthmus.internal';

/** Identity of a cluster's xDS server certificate: `spiffe://<td>/xds/server/dc/<dc>`. */
export function xdsServerSpiffeId(td: string, dc: string): string {
  return `spiffe://${td}/xds/server/dc/${dc}`;
}

/**
 * WAN federation (docs/architecture.md §6c): the DNS domain of server names, Consul's default.
 * Servers' TLS names are `server.<dc>.<domain>` and `<node>.server.<dc>.<domain>`; mesh gateways
 * route them by SNI, so a server is reached from another datacenter only through gateways.
 */
export const federationDomain = 'consul';

/** The mesh gateway meta key that exposes a datacenter's servers (Consul's name). */
export const wanFederationMetaKey = 'consul-wan-federation';

/** `server.<dc>.<domain>`: any server of a datacenter, what a federation link dials. */
export function federationServerName(dc: string): string {
  return `server.${dc}.${federationDomain}`;
}

/** `<node>.server.<dc>.<domain>`: one server by its node name. */
export function federationNodeServerName(node: string, dc: string): string {
  return `${node}.${federationServerName(dc)}`;
}

/** `*.server.<dc>.<domain>`: the gateway chain towards another datacenter's servers by node. */
export function federationServerWildcard(dc: string): string {
  return `*.${federationServerName(dc)}`;
}

/**
 * Identity of a server on the federation link, as TLS server and as client:
 * `spiffe://<td>/federation/server/dc/<dc>`.
 */
export function federationServerSpiffeId(td: string, dc: string): string {
  return `spiffe://${td}/federation/server/dc/${dc}`;
}

/** The datacenter a federation server identity names, or undefined for any other identity. */
export function datacenterOfFederationServer(td: string, spiffeId: string): string | undefined {
  const prefix = `spiffe://${td}/federation/server/dc/`;
  if (!spiffeId.startsWith(prefix)) return undefined;
  const dc = spiffeId.slice(prefix.length);
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(dc) ? dc : undefined;
}
