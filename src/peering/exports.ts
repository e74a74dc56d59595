import {
  type CatalogEvent,
  type CatalogReader,
  instanceHealth,
  type ServiceInstance,
} from '../catalog/types.js';
import type {
  ExportedService,
  ServiceInstance as PeerInstance,
} from '../gen/isthmus/peering/v1/peering.js';
import { meshGatewaySpiffeId, peeredServiceSni, serviceSpiffeId } from '../mesh/names.js';
import { serviceProtocol } from '../catalog/lookups.js';
import { consumerPeers } from '../catalog/sameness-group.js';

/**
 * What this cluster exports to one peer, as pure functions of the catalog (docs/architecture.md §6
 * "Replicated"). `peerName` is our local name for the peering: the `exported-services` entry names
 * consumers by it.
 */

export interface ExportContext {
  readonly catalog: CatalogReader;
  /** Our trust domain and datacenter. */
  readonly trustDomain: string;
  readonly datacenter: string;
}

/** Names of the services exported to `peerName` (`*` = every registered service), sorted. */
export function exportedNamesFor(catalog: CatalogReader, peerName: string): string[] {
  const entry = catalog.configEntry('exported-services', 'default');
  if (!entry) return [];
  const group = (name: string) => catalog.configEntry('sameness-group', name);
  const names = new Set<string>();
  for (const service of entry.services) {
    if (
      service.namespace !== 'default' ||
      !consumerPeers(service.consumers, group).includes(peerName)
    )
      continue;
    if (service.name !== '*') names.add(service.name);
    else
      for (const i of catalog.allInstances())
        if (i.kind === 'typical' && i.namespace === 'default') names.add(i.name);
  }
  return [...names].sort();
}

/**
 * Whether `service` is among `exportedNamesFor(catalog, peerName)`, without listing every exported
 * name (a sidecar's build asks this of its own service: with a `*` export, listing them made
 * building every sidecar quadratic in services, issue 14).
 */
export function isExportedTo(catalog: CatalogReader, peerName: string, service: string): boolean {
  const entry = catalog.configEntry('exported-services', 'default');
  if (!entry) return false;
  const group = (name: string) => catalog.configEntry('sameness-group', name);
  const consumer = (s: (typeof entry.services)[number]) =>
    s.namespace === 'default' && consumerPeers(s.consumers, group).includes(peerName);
  if (entry.services.some((s) => s.name === service && consumer(s))) return true;
  if (!entry.services.some((s) => s.name === '*' && consumer(s))) return false;
  // `*`: a typical instance of the default namespace, looked up in the default partition first.
  if (catalog.instancesOf(service, 'default', 'default').some((i) => i.kind === 'typical'))
    return true;
  return exportedNamesFor(catalog, peerName).includes(service);
}

/**
 * Full state of one exported service: its non-critical instances (health flattened) and, when it
 * has Connect sidecars, one synthetic `<svc>-sidecar-proxy` per healthy mesh gateway, reachable at
 * the gateway's WAN address, with the PeerMeta the importer dials it by.
 */
export function exportedServiceFor(
  ctx: ExportContext,
  peerName: string,
  name: string,
): ExportedService {
  const { catalog } = ctx;
  const instances: PeerInstance[] = catalog
    .instancesOf(name, 'default', 'default')
    .filter((i) => i.kind === 'typical' && instanceHealth(i) !== 'critical')
    .map((i) => ({
      id: i.id,
      name: i.name,
      kind: 'typical',
      address: i.address,
      port: i.port,
      meta: { ...i.meta },
      health: instanceHealth(i),
      destinationServiceName: '',
    }));
  if (catalog.sidecarsOf(name, 'default', 'default').length > 0)
    instances.push(...syntheticSidecars(ctx, peerName, name));
  return { service: { name, namespace: 'default', partition: 'default' }, instances };
}

function syntheticSidecars(ctx: ExportContext, peerName: string, name: string): PeerInstance[] {
  const { trustDomain: td, datacenter: dc, catalog } = ctx;
  const peerMeta = {
    sni: [peeredServiceSni(td, peerName, { name })],
    spiffeId: [serviceSpiffeId(td, dc, { name }), meshGatewaySpiffeId(td, dc)],
    protocol: serviceProtocol(catalog, name),
  };
  return localMeshGateways(catalog, dc).map((gw) => {
    const { address, port } = wanAddressOf(gw);
    return {
      id: `${name}-sidecar-proxy:${address}:${port}`,
      name: `${name}-sidecar-proxy`,
      kind: 'connect-proxy',
      address,
      port,
      meta: {},
      health: instanceHealth(gw),
      peerMeta,
      destinationServiceName: name,
    };
  });
}

/**
 * Healthy mesh gateways of this datacenter (gateways registered for remote datacenters are not
 * ours).
 */
function localMeshGateways(catalog: CatalogReader, datacenter: string): ServiceInstance[] {
  return catalog
    .instancesOfKind('mesh-gateway')
    .filter(
      (gw) => instanceHealth(gw) !== 'critical' && (!gw.datacenter || gw.datacenter === datacenter),
    );
}

function wanAddressOf(gw: ServiceInstance): { address: string; port: number } {
  const wan = gw.taggedAddresses.wan;
  return wan?.address
    ? { address: wan.address, port: wan.port || gw.port }
    : { address: gw.address, port: gw.port };
}

/**
 * The exported services a catalog event can change the state of: the service of a typical
 * instance or of a sidecar (its synthetic sidecars depend on there being one), or every service
 * when a mesh gateway (the synthetic sidecars' address) or a config entry (the list, protocols)
 * changed.
 */
export function servicesTouchedBy(event: CatalogEvent): 'all' | string[] {
  if (event.kind === 'config-entry-changed') return 'all';
  const names: string[] = [];
  const instances = [event.instance];
  if (event.kind === 'instance-upserted' && event.previous) instances.push(event.previous);
  for (const i of instances) {
    if (i.kind === 'mesh-gateway') return 'all';
    if (i.kind === 'typical') names.push(i.name);
    else if (i.kind === 'connect-proxy' && i.proxy) names.push(i.proxy.destinationServiceName);
  }
  return names;
}

/**
 * Whether `event` can change the names `exportedNamesFor` returns, given the `exported` ones: the
 * entries that name them changed, or (for `*`) a typical service appeared or lost its last
 * instance. Anything else leaves the list as it is, so a catalog event costs no walk of the
 * catalog.
 */
export function exportedNamesMayChange(
  catalog: CatalogReader,
  event: CatalogEvent,
  exported: ReadonlySet<string>,
): boolean {
  if (event.kind === 'config-entry-changed')
    return event.entryKind === 'exported-services' || event.entryKind === 'sameness-group';
  const instances = [event.instance];
  if (event.kind === 'instance-upserted' && event.previous) instances.push(event.previous);
  return instances.some(
    (i) =>
      i.kind === 'typical' &&
      i.namespace === 'default' &&
      (!exported.has(i.name) ||
        !catalog.instancesOf(i.name, 'default').some((s) => s.kind === 'typical')),
  );
}
