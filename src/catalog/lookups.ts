/**
 * Catalog reads that the snapshot builders, peering and troubleshoot all make, kept here so each
 * of them imports downward (docs/architecture.md §12).
 */
import {
  instanceHealth,
  type CatalogReader,
  type MeshGatewayMode,
  type Protocol,
  type ServiceInstance,
  type Upstream,
} from './types.js';

/** A service's protocol: service-defaults, else proxy-defaults, else tcp (Consul's order). */
export function serviceProtocol(catalog: CatalogReader, name: string): Protocol {
  const sd = catalog.configEntry('service-defaults', name);
  if (sd) return sd.protocol;
  return catalog.configEntry('proxy-defaults', 'global')?.config.protocol ?? 'tcp';
}

/**
 * An upstream's mesh gateway mode: the first one set on the upstream, its proxy, the destination's
 * service-defaults, proxy-defaults; else `remote` (Consul's default).
 */
export function upstreamGatewayMode(
  catalog: CatalogReader,
  proxy: ServiceInstance,
  u: Upstream,
): MeshGatewayMode {
  const modes = [
    u.meshGateway.mode,
    proxy.proxy?.meshGateway.mode,
    catalog.configEntry('service-defaults', u.destinationName)?.meshGateway.mode,
    catalog.configEntry('proxy-defaults', 'global')?.meshGateway.mode,
  ];
  return modes.find((m) => m !== undefined && m !== '') ?? 'remote';
}

/** An address to reach an instance at, and whether its checks warn (`degraded`). */
export interface InstanceEndpoint {
  readonly address: string;
  readonly port: number;
  readonly health: 'healthy' | 'degraded';
}

/** Gateways' addresses: WAN for gateways of another datacenter, LAN for our own. */
export function gatewayEndpoints(
  gateways: readonly ServiceInstance[],
  side: 'lan' | 'wan',
): InstanceEndpoint[] {
  const out: InstanceEndpoint[] = [];
  for (const g of gateways) {
    const health = instanceHealth(g);
    if (health === 'critical') continue;
    const tagged = g.taggedAddresses[side];
    out.push({
      address: tagged?.address || g.address,
      port: tagged?.port || g.port,
      health: health === 'warning' ? 'degraded' : 'healthy',
    });
  }
  return sortEndpoints(out);
}

/** By address, then port. */
export function sortEndpoints<E extends { readonly address: string; readonly port: number }>(
  endpoints: E[],
): E[] {
  return endpoints.sort((a, b) =>
    a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1,
  );
}
