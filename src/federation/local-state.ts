import { gatewayEndpoints } from '../catalog/lookups.js';
import type { CatalogReader, ServiceInstance } from '../catalog/types.js';
import { wanFederationMetaKey } from '../mesh/names.js';
import type { FederationStateRecord, WanServerRecord } from './states.js';

/** This datacenter's mesh gateways that expose its servers (`Meta consul-wan-federation=1`). */
export function federationGateways(
  catalog: CatalogReader,
  datacenter: string,
): readonly ServiceInstance[] {
  return catalog
    .instancesOfKind('mesh-gateway')
    .filter((g) => g.datacenter === datacenter && g.meta[wanFederationMetaKey] === '1');
}

/** This datacenter's federation state: its exposing gateways' WAN addresses, sorted, and its servers. */
export function localFederationState(
  catalog: CatalogReader,
  datacenter: string,
  servers: readonly WanServerRecord[],
  now: number,
): FederationStateRecord {
  const meshGateways = gatewayEndpoints(federationGateways(catalog, datacenter), 'wan').map(
    (e) => ({ address: e.address, port: e.port }),
  );
  return { datacenter, meshGateways, updatedAt: now, servers };
}

/**
 * Where this server dials the primary: its own exposing gateways (LAN side) first, then the
 * primary's gateways it was started with (`--primary-gateways`, first contact). Never a server.
 */
export function primaryDialAddresses(
  catalog: CatalogReader,
  datacenter: string,
  primaryGateways: readonly string[],
): string[] {
  const local = gatewayEndpoints(federationGateways(catalog, datacenter), 'lan').map(
    (e) => `${e.address}:${e.port}`,
  );
  return [...new Set([...local, ...primaryGateways])];
}
