import type { FastifyInstance } from 'fastify';
import type { Catalog } from '../catalog/catalog.js';
import { IsthmusError } from '../errors.js';
import type { EstablishInput } from '../peering/establish.js';
import type { Peerings } from '../peering/peerings.js';
import { orThrow, parseEstablishRequest, parseGenerateTokenRequest } from '../peering/requests.js';
import { encodeToken } from '../peering/token.js';
import { consumerPeers } from '../catalog/sameness-group.js';
import { type Peering, defaultHealthyWindowMs, isHealthy } from '../peering/types.js';
import { acceptJsonBodies } from './json-body.js';
import type { PeeringJson } from './ui-json.js';
import { anyone, withAccess } from './route-access.js';

export interface PeeringRoutesDeps {
  readonly peerings: Pick<Peerings, 'generateToken' | 'list' | 'read' | 'delete'>;
  /** Dialer side of `POST /v1/peering/establish` (src/peering/establish.ts). */
  establish(input: EstablishInput): Promise<Peering>;
  readonly catalog: Pick<Catalog, 'configEntry' | 'allInstances'>;
  readonly now?: () => number;
  readonly healthyWindowMs?: number;
}

/** The peering JSON is declared with the web UI's shapes, which it shows. */
export type { PeeringJson } from './ui-json.js';

/** `GET /v1/exported-services`: Consul's resolved shape. */
export interface ExportedServiceJson {
  readonly Service: string;
  readonly Consumers: { readonly Peers: readonly string[] };
}

export function peeringJson(
  p: Peering,
  now: number,
  healthyWindowMs = defaultHealthyWindowMs,
): PeeringJson {
  const s = p.streamStatus;
  const json: PeeringJson = {
    ID: p.id,
    Name: p.name,
    State: p.state,
    PeerID: p.peerId,
    PeerServerName: p.peerServerName,
    PeerServerAddresses: p.peerServerAddresses,
    PeerCAPems: p.peerCaPems,
    Meta: p.meta,
    Remote: { Partition: p.remote.partition, Datacenter: p.remote.datacenter },
    StreamStatus: {
      ImportedServices: s.importedServices,
      ExportedServices: s.exportedServices,
      LastHeartbeat: s.lastHeartbeat ?? null,
      LastReceive: s.lastReceive ?? null,
      LastSend: s.lastSend ?? null,
      LastError: s.lastError ?? '',
      LastNack: s.lastNack ?? '',
    },
    Healthy: isHealthy(p, now, healthyWindowMs),
    CreateIndex: p.createIndex,
    ModifyIndex: p.modifyIndex,
  };
  return p.deletedAt ? { ...json, DeletedAt: p.deletedAt } : json;
}

type NameParams = { Params: { name: string } };

/**
 * Consul's peering API: `POST /v1/peering/token` → `{PeeringToken}`, `POST /v1/peering/establish`
 * → `{}`, `GET /v1/peerings`, `GET|DELETE /v1/peering/:name` (404 when unknown; DELETE answers at
 * once, the peering shows DELETING until the peer is told), `GET /v1/exported-services`. With
 * `--http-token`, every one of them needs the operator or a `peering` token (reads: also `read`),
 * except exported-services, open to anyone (src/api/auth.ts).
 */
export function registerPeeringRoutes(app: FastifyInstance, deps: PeeringRoutesDeps): void {
  const now = deps.now ?? Date.now;
  const json = (p: Peering) => peeringJson(p, now(), deps.healthyWindowMs);
  const found = (name: string): Peering => {
    const p = deps.peerings.read(name);
    if (!p) throw new IsthmusError('not_found', `peering ${JSON.stringify(name)} not found`);
    return p;
  };
  const verb = withAccess({ peering: true });
  const reads = withAccess({ read: true, peering: true });
  void app.register(async (scope) => {
    acceptJsonBodies(scope);
    scope.post('/v1/peering/token', verb, async (request) => {
      const { token } = await deps.peerings.generateToken(
        orThrow(parseGenerateTokenRequest(request.body)),
      );
      return { PeeringToken: encodeToken(token) };
    });
    scope.post('/v1/peering/establish', verb, async (request) => {
      await deps.establish(orThrow(parseEstablishRequest(request.body)));
      return {};
    });
    scope.get('/v1/peerings', reads, async () => deps.peerings.list().map(json));
    scope.get<NameParams>('/v1/peering/:name', reads, async (request) =>
      json(found(request.params.name)),
    );
    scope.delete<NameParams>('/v1/peering/:name', verb, async (request) => {
      // An unknown name is the store update's not_found (404), with the same message as reads.
      await deps.peerings.delete(request.params.name);
      return {};
    });
    scope.get('/v1/exported-services', withAccess(anyone), async () =>
      exportedServices(deps.catalog),
    );
  });
}

/**
 * The `exported-services` entry resolved against the catalog: `*` stands for every registered
 * service (sidecars and gateways are not exported by name), consumers merged, sorted.
 */
export function exportedServices(catalog: PeeringRoutesDeps['catalog']): ExportedServiceJson[] {
  const entry = catalog.configEntry('exported-services', 'default');
  if (!entry) return [];
  const registered = new Set(
    catalog
      .allInstances()
      .filter((i) => i.kind === 'typical' && i.namespace === 'default')
      .map((i) => i.name),
  );
  const peers = new Map<string, Set<string>>();
  for (const service of entry.services) {
    if (service.namespace !== 'default') continue;
    const names = service.name === '*' ? [...registered] : [service.name];
    for (const name of names) {
      const set = peers.get(name) ?? new Set<string>();
      for (const peer of consumerPeers(service.consumers, (g) =>
        catalog.configEntry('sameness-group', g),
      ))
        set.add(peer);
      peers.set(name, set);
    }
  }
  return [...peers]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([Service, set]) => ({ Service, Consumers: { Peers: [...set].sort() } }));
}
