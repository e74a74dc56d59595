import { isIP } from 'node:net';
import { gatewayEndpoints, sortEndpoints, upstreamGatewayMode } from '../catalog/lookups.js';
import { matchesSubset, type SubsetFilter } from '../catalog/subset-filter.js';
import {
  instanceHealth,
  type CatalogReader,
  type ServiceInstance,
  type Upstream,
} from '../catalog/types.js';
import type { BuildContext } from './context.js';
import type { EndpointIR } from './types.js';

/**
 * Endpoints of a local service: its sidecars (those of a subset, when given), healthy unless the
 * sidecar or the instance it fronts is critical (then left out) or warning (degraded).
 */
export function sidecarEndpoints(
  catalog: CatalogReader,
  service: string,
  namespace: string,
  partition: string,
  subset?: { readonly filter: SubsetFilter; readonly onlyPassing: boolean },
): EndpointIR[] {
  const out: EndpointIR[] = [];
  for (const sidecar of catalog.sidecarsOf(service, namespace, partition)) {
    const fronted = sidecar.proxy?.destinationServiceId
      ? catalog.instance(sidecar.proxy.destinationServiceId)
      : undefined;
    const statuses = [instanceHealth(sidecar), fronted ? instanceHealth(fronted) : 'passing'];
    if (statuses.includes('critical')) continue;
    // A subset (service-resolver `Subsets`) filters on the service instance the sidecar fronts.
    if (subset?.onlyPassing && statuses.includes('warning')) continue;
    if (subset && subset.filter.length > 0 && !(fronted && matchesSubset(subset.filter, fronted)))
      continue;
    const lan = sidecar.taggedAddresses.lan;
    out.push({
      address: lan?.address || sidecar.address,
      port: lan?.port || sidecar.port,
      health: statuses.includes('warning') ? 'degraded' : 'healthy',
    });
  }
  return sortEndpoints(out);
}

/**
 * Local datacenter: the destination's sidecars. Another datacenter: through mesh gateways, the
 * remote ones' WAN addresses (mode remote, the default) or our own (mode local).
 */
export function upstreamEndpoints(
  proxy: ServiceInstance,
  u: Upstream,
  dc: string,
  svc: { name: string; namespace: string; partition: string },
  ctx: Pick<BuildContext, 'catalog' | 'datacenter' | 'federation'>,
  subset?: { readonly filter: SubsetFilter; readonly onlyPassing: boolean },
): EndpointIR[] {
  if (dc === ctx.datacenter)
    return sidecarEndpoints(ctx.catalog, svc.name, svc.namespace, svc.partition, subset);
  const mode = upstreamGatewayMode(ctx.catalog, proxy, u);
  const gateways = ctx.catalog.instancesOfKind('mesh-gateway');
  if (mode === 'local')
    return gatewayEndpoints(
      gateways.filter((g) => g.datacenter === ctx.datacenter),
      'lan',
    );
  return remoteDatacenterGateways(dc, ctx);
}

/**
 * Another datacenter's gateways, WAN side: those registered here by hand, and with WAN federation
 * those of its replicated federation state (docs/architecture.md §6c), once each.
 */
export function remoteDatacenterGateways(
  dc: string,
  ctx: Pick<BuildContext, 'catalog' | 'federation'>,
): EndpointIR[] {
  const registered = ctx.catalog.instancesOfKind('mesh-gateway').filter((g) => g.datacenter === dc);
  const out = gatewayEndpoints(registered, 'wan');
  const seen = new Set(out.map((e) => `${e.address}:${e.port}`));
  for (const g of ctx.federation?.remoteGateways(dc) ?? []) {
    if (seen.has(`${g.address}:${g.port}`)) continue;
    seen.add(`${g.address}:${g.port}`);
    out.push({ address: g.address, port: g.port, health: 'healthy' });
  }
  return sortEndpoints(out);
}

/** Envoy's connect timeout for every cluster isthmus generates. */
export const connectTimeoutMs = 5_000;

/** Hostnames cannot go into EDS: such a cluster is resolved by Envoy (STRICT_DNS). */
export function needsDns(endpoints: readonly EndpointIR[]): boolean {
  return endpoints.some((e) => isIP(e.address) === 0);
}

/**
 * A cluster's endpoints, marked for DNS resolution when one is a hostname (a gateway's WAN name,
 * say).
 */
export function withEndpoints(endpoints: EndpointIR[]): { endpoints: EndpointIR[]; dns?: true } {
  return needsDns(endpoints) ? { endpoints, dns: true } : { endpoints };
}
