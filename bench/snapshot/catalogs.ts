/**
 * The two topologies of the benchmark, registered in a FakeCatalog (test/helpers): a sidecar with N
 * upstreams (each a service with a few sidecar-fronted instances, a mix of protocols through
 * service-defaults, and some intentions on the subject service), and a datacenter of S services × I
 * instances (each with its sidecar) behind a mesh gateway, plus one remote datacenter's gateway.
 * Also the fake leaf and roots the builders take; the builders copy PEM strings and never parse
 * them.
 */
import type { CaRoots, Leaf } from '../../src/ca/types.js';
import type { Protocol, ServiceInstance, Upstream } from '../../src/catalog/types.js';
import { type ImportedInstance, importedInstancesOf } from '../../src/peering/imported.js';
import type { BuildContext, PeeringView } from '../../src/snapshot/context.js';
import { FakeCatalog } from '../../test/helpers/fake-catalog.js';

export const datacenter = 'dc1';
export const trustDomain = '11111111-2222-3333-4444-555555555555.consul';
export const sidecarProxyId = 'subject-1-sidecar-proxy';
export const gatewayId = 'mesh-gateway-1';

const pem = (label: string, body: string) =>
  `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;

export const roots: CaRoots = {
  trustDomain,
  activeRootId: 'r1',
  roots: [
    {
      id: 'r1',
      certPem: pem('CERTIFICATE', 'root'),
      active: true,
      notBefore: new Date(0),
      notAfter: new Date(0),
    },
  ],
};

export const leafFor = (spiffeId: string): Leaf => ({
  spiffeId,
  certPem: pem('CERTIFICATE', 'leaf'),
  keyPem: pem('PRIVATE KEY', 'key'),
  serial: '1',
  rootId: 'r1',
  notBefore: new Date(0),
  notAfter: new Date(0),
});

/** The one peer the gateway's services are exported to, with a known trust bundle. */
export const peerName = 'peer-1';
const peerTrustDomain = '99999999-8888-7777-6666-555555555555.consul';

export const peering: PeeringView = {
  peerNames: () => [peerName],
  bundle: (peer) =>
    peer === peerName
      ? { peer, trustDomain: peerTrustDomain, pems: [pem('CERTIFICATE', 'peer root')] }
      : undefined,
  importedServiceNames: () => [],
  importedInstances: () => [],
};

/** What SnapshotManager.context() hands the builders. */
export const contextFor = (
  catalog: BuildContext['catalog'],
  view: PeeringView = peering,
): BuildContext => ({
  catalog,
  datacenter,
  trustDomain,
  roots,
  peerTrustDomain: (peer) => view.bundle(peer)?.trustDomain,
  peering: view,
});

/** The SNI `peerName`'s gateways are dialed by for its service `service`. */
export const importedSni = (service: string) =>
  `${service}.default.default.${peerName}.external.${peerTrustDomain}`;

/**
 * `services` × `instances` services imported from `peerName`, as the importer holds them: each
 * instance a synthetic sidecar naming the peer gateway it is reached through (its address and
 * port, the endpoint the benchmark moves). `move(i, j, port)` re-imports service i with instance j
 * at `port`, as a replicated update replaces a service whole.
 */
export class ImportsView implements PeeringView {
  private readonly byService = new Map<string, readonly ImportedInstance[]>();
  private names: string[];

  constructor(
    services: number,
    private readonly instances: number,
  ) {
    for (let i = 0; i < services; i++) this.byService.set(serviceName(i), this.service(i));
    this.names = [...this.byService.keys()].sort();
  }

  peerNames = peering.peerNames;
  bundle = peering.bundle;
  importedServiceNames = (peer: string) => (peer === peerName ? this.names : []);
  importedInstances = (peer: string, service: string) =>
    peer === peerName ? (this.byService.get(service) ?? []) : [];

  /**
   * Imports service number `i` (one not imported yet) with `instances` instances, as a replicated
   * update adds a service; the names stay sorted, as the importer keeps them.
   */
  add(i: number): string {
    const service = serviceName(i);
    this.byService.set(service, this.service(i));
    this.names = [...this.byService.keys()].sort();
    return service;
  }

  move(i: number, j: number, port: number): string {
    const service = serviceName(i);
    const ports = this.byService.get(service)!.map((instance) => instance.port);
    ports[j] = port;
    this.byService.set(service, this.service(i, ports));
    return service;
  }

  /**
   * Service i as the importer holds it after a replicated update (`importedInstancesOf`): a
   * synthetic sidecar per instance, each at its own peer gateway address (so each is an endpoint)
   * and at `ports[j]`.
   */
  private service(
    i: number,
    ports: readonly number[] = Array(this.instances).fill(8443),
  ): ImportedInstance[] {
    const svc = serviceName(i);
    const peerMeta = {
      sni: [importedSni(svc)],
      spiffeId: [`spiffe://${peerTrustDomain}/ns/default/dc/peer-dc/svc/${svc}`],
      protocol: 'tcp',
    };
    return importedInstancesOf(peerName, 'peer-dc', {
      service: { name: svc, namespace: 'default', partition: 'default' },
      instances: ports.map((port, j) => ({
        id: `${svc}-sidecar-proxy-${j}`,
        name: `${svc}-sidecar-proxy`,
        kind: 'connect-proxy',
        address: ip(i * 100 + j + 1),
        port,
        meta: {},
        health: 'passing',
        peerMeta,
        destinationServiceName: svc,
      })),
    });
  }
}

/** Our mesh gateway, as the gateway case and the imports case register it. */
function registerGateway(c: FakeCatalog): void {
  c.upsert({
    id: gatewayId,
    name: 'mesh-gateway',
    kind: 'mesh-gateway',
    address: '10.250.0.1',
    port: 8443,
    taggedAddresses: { wan: { address: '192.0.2.1', port: 443 } },
  });
}

/** Our mesh gateway alone: what it holds of the imports is the LAN side's clusters. */
export function importingGatewayCatalog(): FakeCatalog {
  const c = new FakeCatalog(datacenter);
  registerGateway(c);
  return c;
}

const serviceName = (i: number) => `svc-${String(i).padStart(4, '0')}`;
const ip = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

/** Upstream i's protocol: half tcp, a quarter http, a quarter grpc (HTTP/2 to the upstream). */
export const protocolOf = (i: number): Protocol =>
  i % 2 === 0 ? 'tcp' : i % 4 === 1 ? 'http' : 'grpc';

/** The id of the sidecar of instance `j` of service `i`: its address and port are an endpoint. */
export const sidecarId = (i: number, j: number) => `${serviceName(i)}-${j}-sidecar-proxy`;

/** A service instance and its sidecar, the sidecar at `port` (the endpoint the benchmark moves). */
export function registerInstance(
  c: FakeCatalog,
  i: number,
  j: number,
  instances: number,
  port = 21000,
): void {
  const svc = serviceName(i);
  const n = i * instances + j + 1;
  c.upsert({ id: `${svc}-${j}`, name: svc, address: ip(n), port: 8080 });
  c.upsert({
    id: sidecarId(i, j),
    name: `${svc}-sidecar-proxy`,
    kind: 'connect-proxy',
    address: ip(n),
    port,
    proxy: {
      destinationServiceName: svc,
      destinationServiceId: `${svc}-${j}`,
      localServiceAddress: '127.0.0.1',
      localServicePort: 8080,
      meshGateway: { mode: '' },
      upstreams: [],
    },
  });
}

function upstream(i: number): Upstream {
  return {
    destinationName: serviceName(i),
    destinationNamespace: '',
    destinationPartition: '',
    destinationPeer: '',
    datacenter: '',
    localBindAddress: '127.0.0.1',
    localBindPort: 10000 + i,
    meshGateway: { mode: '' },
  };
}

/**
 * The subject sidecar (`sidecarProxyId`) with `upstreams` upstreams of `instances` instances each,
 * in a catalog of `services` services (those past the upstreams are registered alike, and nothing
 * the sidecar reaches depends on them).
 */
export function sidecarCatalog(
  upstreams: number,
  instances: number,
  services = upstreams,
): FakeCatalog {
  const c = new FakeCatalog(datacenter);
  for (let i = upstreams; i < services; i++)
    for (let j = 0; j < instances; j++) registerInstance(c, i, j, instances);
  for (let i = 0; i < upstreams; i++) {
    for (let j = 0; j < instances; j++) registerInstance(c, i, j, instances);
    const protocol = protocolOf(i);
    if (protocol !== 'tcp')
      c.putEntry({
        kind: 'service-defaults',
        name: serviceName(i),
        namespace: 'default',
        partition: 'default',
        protocol,
        meshGateway: { mode: '' },
      });
  }
  c.upsert({ id: 'subject-1', name: 'subject', address: '10.200.0.1', port: 8080 });
  c.upsert({
    id: sidecarProxyId,
    name: 'subject-sidecar-proxy',
    kind: 'connect-proxy',
    address: '10.200.0.1',
    port: 21000,
    proxy: {
      destinationServiceName: 'subject',
      destinationServiceId: 'subject-1',
      localServiceAddress: '127.0.0.1',
      localServicePort: 8080,
      meshGateway: { mode: '' },
      upstreams: Array.from({ length: upstreams }, (_, i) => upstream(i)),
    },
  });
  // Ten allowed callers and a default deny for the rest: a public listener with a real RBAC filter.
  c.putEntry({
    kind: 'service-intentions',
    name: 'subject',
    namespace: 'default',
    partition: 'default',
    sources: [
      ...Array.from({ length: 10 }, (_, i) => ({
        name: serviceName(i),
        namespace: 'default',
        partition: 'default',
        peer: '',
        action: 'allow' as const,
      })),
      { name: '*', namespace: 'default', partition: 'default', peer: '', action: 'deny' },
    ],
  });
  return c;
}

/**
 * `services` × `instances` sidecar-fronted instances, every service exported to `peerName` (plain
 * TCP: the gateway passes mesh TLS through to an `exported~` cluster per service), our mesh
 * gateway, and a gateway of dc2. A gateway routes a local service only through its exports
 * (docs/architecture.md §5), so the exports are what make it hold a cluster per service.
 */
export function gatewayCatalog(services: number, instances: number): FakeCatalog {
  const c = new FakeCatalog(datacenter);
  for (let i = 0; i < services; i++)
    for (let j = 0; j < instances; j++) registerInstance(c, i, j, instances);
  c.putEntry({
    kind: 'exported-services',
    name: 'default',
    services: Array.from({ length: services }, (_, i) => ({
      name: serviceName(i),
      namespace: 'default',
      consumers: [{ peer: peerName }],
    })),
  });
  registerGateway(c);
  c.upsert({
    id: 'mesh-gateway-dc2',
    name: 'mesh-gateway',
    kind: 'mesh-gateway',
    datacenter: 'dc2',
    address: '10.9.0.1',
    port: 8443,
    taggedAddresses: { wan: { address: '198.51.100.7', port: 443 } },
  });
  return c;
}

/** The instance of `c` with this id (the benchmark only asks for ids it registered). */
export function mustGet(
  c: { instance(id: string): ServiceInstance | undefined },
  id: string,
): ServiceInstance {
  const i = c.instance(id);
  if (!i) throw new Error(`no instance "${id}" in the benchmark catalog`);
  return i;
}
