import { isIP } from 'node:net';
import { sortEndpoints } from '../catalog/lookups.js';
import { instanceHealth, type CatalogReader } from '../catalog/types.js';
import type { EndpointIR } from './types.js';

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
