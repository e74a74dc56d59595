import type { FederationStates } from './states.js';

/**
 * What proxies are built from (the snapshot layer's `FederationView`, docs/architecture.md §6c):
 * the other datacenters' exposing gateways, from the replicated federation states, and this
 * server's federation port.
 */
export function federationView(
  states: FederationStates,
  local: { readonly datacenter: string; readonly nodeName: string; addresses(): readonly string[] },
) {
  return {
    remoteDatacenters: () =>
      states
        .all()
        .filter((s) => s.datacenter !== local.datacenter && s.meshGateways.length > 0)
        .map((s) => s.datacenter),
    remoteGateways: (dc: string) =>
      dc === local.datacenter ? [] : (states.get(dc)?.meshGateways ?? []),
    localServerAddresses: () => local.addresses(),
    nodeName: local.nodeName,
  };
}

/** Every datacenter this server knows of: its own and each with a federation state, sorted. */
export function knownDatacenters(states: FederationStates, datacenter: string): string[] {
  return [...new Set([datacenter, ...states.all().map((s) => s.datacenter)])].sort();
}
