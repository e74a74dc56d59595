/**
 * Peering through mesh gateways (the `mesh` config entry's `Peering.PeerThroughMeshGateways`): the
 * acceptor's tokens carry its mesh gateways' WAN addresses, and the dialer reaches the peer's
 * servers through its own mesh gateway first (LAN address, the peer's server name as SNI).
 */
import type { CatalogReader } from '../catalog/types.js';
import { formatHostPort } from '../config/host-port.js';
import { gatewayEndpoints } from '../catalog/lookups.js';

export function peerThroughMeshGateways(catalog: CatalogReader): boolean {
  return catalog.configEntry('mesh', 'mesh')?.peering.peerThroughMeshGateways ?? false;
}

/**
 * `host:port` of this datacenter's passing/warning mesh gateways on one side; empty unless peering
 * through them.
 */
export function meshGatewayPeeringAddresses(
  catalog: CatalogReader,
  datacenter: string,
  side: 'lan' | 'wan',
): string[] {
  if (!peerThroughMeshGateways(catalog)) return [];
  const local = catalog.instancesOfKind('mesh-gateway').filter((g) => g.datacenter === datacenter);
  return gatewayEndpoints(local, side).map((e) =>
    formatHostPort({ host: e.address, port: e.port }),
  );
}

/**
 * The addresses to dial a peer at: our own gateways first (when peering through them), then the
 * peer's.
 */
export function withLocalGatewaysFirst(
  local: readonly string[],
  peer: readonly string[],
): string[] {
  return [...new Set([...local, ...peer])];
}
