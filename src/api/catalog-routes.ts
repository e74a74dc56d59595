import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Catalog } from '../catalog/catalog.js';
import { type HealthStatus, type ServiceInstance, instanceHealth } from '../catalog/types.js';
import { IsthmusError } from '../errors.js';
import { catalogServiceJson, healthEntryJson, syntheticNode } from './consul-json.js';
import { acceptJsonBodies } from './json-body.js';
import { anyone, withAccess } from './route-access.js';
import { checkTarget, instanceTarget, registrationTarget } from './service-targets.js';

export interface CatalogRoutesDeps {
  readonly catalog: Catalog;
  /**
   * Instances of `name` imported from the cluster peer `peer` (`?peer=` on health queries), or
   * undefined when no such peer exists. Until peering provides it, every peer is unknown and such
   * queries answer `[]`, as Consul does for a peer that exports nothing.
   */
  readonly importedInstances?: (
    peer: string,
    name: string,
    namespace: string,
  ) => readonly ServiceInstance[] | undefined;
  /** Every instance imported from `peer` (`GET /v1/catalog/services?peer=`). */
  readonly importedServices?: (peer: string) => readonly ServiceInstance[];
}

type Params<K extends string> = { Params: Record<K, string> };
interface Scope {
  readonly ns?: string;
  readonly partition?: string;
}
type HealthQuery = { Querystring: Scope & { passing?: string; peer?: string } };

/**
 * Consul's agent, catalog and health endpoints over the one catalog of this server:
 * registration, deregistration, TTL check updates, and the read endpoints in Consul's shapes.
 */
export function registerCatalogRoutes(app: FastifyInstance, deps: CatalogRoutesDeps): void {
  void app.register(async (scope) => {
    acceptJsonBodies(scope);
    registerAgentRoutes(scope, deps.catalog);
    registerReadRoutes(scope, deps);
  });
}

/**
 * Agent writes: the operator, or the token of the service they act on (src/api/service-targets.ts).
 */
function registerAgentRoutes(app: FastifyInstance, catalog: Catalog): void {
  const ofInstance = withAccess({ service: instanceTarget(catalog, 'id') });
  const ofCheck = withAccess({ service: checkTarget(catalog) });
  app.put(
    '/v1/agent/service/register',
    withAccess({ service: registrationTarget(catalog) }),
    async (request, reply) => {
      await catalog.register(request.body);
      return empty(reply);
    },
  );
  app.put<Params<'id'>>('/v1/agent/service/deregister/:id', ofInstance, async (request, reply) => {
    await catalog.deregister(request.params.id);
    return empty(reply);
  });
  const ttlUpdates: Readonly<Record<string, HealthStatus>> = {
    pass: 'passing',
    warn: 'warning',
    fail: 'critical',
  };
  for (const [verb, status] of Object.entries(ttlUpdates)) {
    app.put<Params<'checkId'> & { Querystring: { note?: string } }>(
      `/v1/agent/check/${verb}/:checkId`,
      ofCheck,
      async (request, reply) => {
        await catalog.updateTtlCheck(request.params.checkId, status, request.query.note ?? '');
        return empty(reply);
      },
    );
  }
  // Consul's general form: `{Status, Output}` in the body.
  app.put<Params<'checkId'>>('/v1/agent/check/update/:checkId', ofCheck, async (request, reply) => {
    const { status, output } = parseCheckUpdate(request.body);
    await catalog.updateTtlCheck(request.params.checkId, status, output);
    return empty(reply);
  });
}

/**
 * Catalog and health reads are open to anyone, as before scopes (names and addresses, no secret).
 */
function registerReadRoutes(app: FastifyInstance, deps: CatalogRoutesDeps): void {
  const { catalog } = deps;
  const open = withAccess(anyone);
  const node = syntheticNode(catalog.datacenter);
  app.get<{ Querystring: { peer?: string } }>('/v1/catalog/services', open, async (request) => {
    const { peer } = request.query;
    return servicesWithTags(peer ? (deps.importedServices?.(peer) ?? []) : catalog.allInstances());
  });
  app.get<Params<'name'> & { Querystring: Scope }>(
    '/v1/catalog/service/:name',
    open,
    async (request) =>
      catalog
        .instancesOf(request.params.name, request.query.ns, request.query.partition)
        .map((i) => catalogServiceJson(i, node)),
  );
  app.get<Params<'name'> & HealthQuery>('/v1/health/service/:name', open, async (request) => {
    const { ns, partition, peer } = request.query;
    const instances = peer
      ? (deps.importedInstances?.(peer, request.params.name, ns ?? 'default') ?? [])
      : catalog.instancesOf(request.params.name, ns, partition);
    return healthEntries(instances, isSet(request.query.passing)).map((i) =>
      healthEntryJson(i, node),
    );
  });
  // The proxies that front a service (what a Consul client dials for a Connect-enabled service).
  app.get<Params<'name'> & HealthQuery>('/v1/health/connect/:name', open, async (request) => {
    const { ns, partition } = request.query;
    return healthEntries(
      catalog.sidecarsOf(request.params.name, ns, partition),
      isSet(request.query.passing),
    ).map((i) => healthEntryJson(i, node));
  });
}

/** `{ "<name>": [tags…] }`: every service name with the union of its instances' tags, sorted. */
function servicesWithTags(instances: readonly ServiceInstance[]): Record<string, string[]> {
  const tags = new Map<string, Set<string>>();
  for (const i of instances) {
    const set = tags.get(i.name) ?? new Set<string>();
    for (const t of i.tags) set.add(t);
    tags.set(i.name, set);
  }
  const names = [...tags.keys()].sort();
  return Object.fromEntries(names.map((n) => [n, [...tags.get(n)!].sort()]));
}

/** `?passing` keeps instances whose checks all pass (a warning is not passing, as in Consul). */
function healthEntries(
  instances: readonly ServiceInstance[],
  passingOnly: boolean,
): readonly ServiceInstance[] {
  return passingOnly ? instances.filter((i) => instanceHealth(i) === 'passing') : instances;
}

/** Consul's boolean query flags: present (`?passing`) is true unless its value is false/0. */
function isSet(value: string | undefined): boolean {
  return value !== undefined && value !== 'false' && value !== '0';
}

function parseCheckUpdate(body: unknown): { status: HealthStatus; output: string } {
  const obj = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const status = obj.Status;
  if (status !== 'passing' && status !== 'warning' && status !== 'critical') {
    throw new IsthmusError(
      'invalid_argument',
      'Status: must be one of "passing", "warning", "critical"',
      'Status',
    );
  }
  const output = obj.Output ?? '';
  if (typeof output !== 'string')
    throw new IsthmusError('invalid_argument', 'Output: must be a string', 'Output');
  return { status, output };
}

/** Consul answers agent writes with 200 and an empty body. */
function empty(reply: FastifyReply): FastifyReply {
  return reply.status(200).send();
}
