import { isIP } from 'node:net';
import {
  instanceHealth,
  type CatalogReader,
  type MeshGatewayMode,
  type Protocol,
  type ServiceInstance,
  type Upstream,
} from '../catalog/types.js';
import type { EndpointIR } from './types.js';

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

/**
 * Endpoints of a local service: its sidecars, healthy unless the sidecar or the instance it fronts
 * is critical (then left out) or warning (degraded).
 */
export function sidecarEndpoints(
  catalog: CatalogReader,
  service: string,
  namespace: string,
  partition: string,
): EndpointIR[] {
  const out: EndpointIR[] = [];
  for (const sidecar of catalog.sidecarsOf(service, namespace, partition)) {
    const fronted = sidecar.proxy?.destinationServiceId
      ? catalog.instance(sidecar.proxy.destinationServiceId)
      : undefined;
    const statuses = [instanceHealth(sidecar), fronted ? instanceHealth(fronted) : 'passing'];
    if (statuses.includes('critical')) continue;
    const lan = sidecar.taggedAddresses.lan;
    out.push({
      address: lan?.address || sidecar.address,
      port: lan?.port || sidecar.port,
      health: statuses.includes('warning') ? 'degraded' : 'healthy',
    });
  }
  return sortEndpoints(out);
}

/** Gateways' addresses: WAN for gateways of another datacenter, LAN for our own. */
export function gatewayEndpoints(
  gateways: readonly ServiceInstance[],
  side: 'lan' | 'wan',
): EndpointIR[] {
  const out: EndpointIR[] = [];
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

/** Envoy's connect timeout for every cluster isthmus generates. */
export const connectTimeoutMs = 5_000;

/** Hostnames cannot go into EDS: such a cluster is resolved by Envoy (STRICT_DNS). */
export function needsDns(endpoints: readonly EndpointIR[]): boolean {
  return endpoints.some((e) => isIP(e.address) === 0);
}

/** A cluster's endpoints, marked for DNS resolution when one is a hostname (a gateway's WAN name, say). */
export function withEndpoints(endpoints: EndpointIR[]): { endpoints: EndpointIR[]; dns?: true } {
  return needsDns(endpoints) ? { endpoints, dns: true } : { endpoints };
}

/** By address, then port. */
export function sortEndpoints(endpoints: EndpointIR[]): EndpointIR[] {
  return endpoints.sort((a, b) =>
    a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1,
  );
}
