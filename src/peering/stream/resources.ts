/**
 * What a peering stream replicates, as literal data (docs/architecture.md §6 "Replicated"). A
 * resource URL is the type URL of the message in `Response.resource`, so a response whose `Any`
 * names another type is refused.
 */
export const ResourceUrl = {
  /** The sender's CA roots `{TrustDomain, RootPEMs}`; resource_id = the trust domain. */
  trustBundle: 'type.googleapis.com/isthmus.peering.v1.TrustBundle',
  /** The acceptor's peering server addresses (to the dialer only). */
  serverAddresses: 'type.googleapis.com/isthmus.peering.v1.ServerAddresses',
  /** The list of services the sender exports to this peer. */
  exportedServiceList: 'type.googleapis.com/isthmus.peering.v1.ExportedServiceList',
  /** Full state of one exported service; resource_id = the service name. */
  exportedService: 'type.googleapis.com/isthmus.peering.v1.ExportedService',
} as const;

export type ResourceUrl = (typeof ResourceUrl)[keyof typeof ResourceUrl];

export type StreamRole = 'acceptor' | 'dialer';

export const allResourceUrls: readonly ResourceUrl[] = Object.values(ResourceUrl);

export function isResourceUrl(url: string): url is ResourceUrl {
  return (allResourceUrls as readonly string[]).includes(url);
}

/**
 * What each end subscribes to, in subscription order: the trust bundle first, so an importer holds
 * the peer's roots before it receives services whose certificates chain to them. Only the dialer
 * imports server addresses (it is the one that dials).
 */
export const importsOf: Readonly<Record<StreamRole, readonly ResourceUrl[]>> = {
  dialer: [
    ResourceUrl.trustBundle,
    ResourceUrl.serverAddresses,
    ResourceUrl.exportedServiceList,
    ResourceUrl.exportedService,
  ],
  acceptor: [ResourceUrl.trustBundle, ResourceUrl.exportedServiceList, ResourceUrl.exportedService],
};

/** What each end answers subscriptions for: whatever the other end imports. */
export const exportsOf: Readonly<Record<StreamRole, readonly ResourceUrl[]>> = {
  dialer: importsOf.acceptor,
  acceptor: importsOf.dialer,
};
