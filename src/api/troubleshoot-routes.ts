import type { FastifyInstance } from 'fastify';
import type { Catalog } from '../catalog/catalog.js';
import type { CertificateAuthority } from '../ca/index.js';
import type { ImportedServices } from '../peering/imported.js';
import type { Peerings } from '../peering/peerings.js';
import type { XdsServer } from '../xds/server.js';
import {
  type Checklist,
  gatherPeeringFacts,
  gatherProxyFacts,
  gatherUpstreamFacts,
  peeringChecklist,
  proxyChecklist,
  type UpstreamReport,
  upstreamReport,
} from '../troubleshoot/index.js';
import { type ClusterView, fromProxyHolder } from './cluster-fanout.js';
import { withAccess } from './route-access.js';
import { instanceTarget } from './service-targets.js';

/** What the troubleshoot checklists read: live server state, never secrets. */
export interface TroubleshootDeps {
  readonly datacenter: string;
  readonly catalog: Catalog;
  readonly ca: CertificateAuthority;
  readonly peerings: Peerings;
  readonly imported: ImportedServices;
  readonly xds: XdsServer;
  /** A peering with no heartbeat for this long is unhealthy (--peering-heartbeat-timeout-ms). */
  readonly heartbeatTimeoutMs: number;
  readonly now?: () => number;
  /** The other servers: a proxy connected to one of them is troubleshot there. */
  readonly cluster?: ClusterView;
}

/**
 * `GET /v1/troubleshoot/peering/:name`, `GET /v1/troubleshoot/proxy/:id` and
 * `GET /v1/troubleshoot/upstream/:id/:upstream` (the checklist plus `Chain` and `Targets`): the checklist
 * (`{Subject, Checks: [{Name, OK, Detail, Fix?, Skipped?}], OK}`), 200 whether or not checks fail.
 * 404 `{error}` only when the subject does not exist at all: no peering with that name, or a proxy
 * ID that is neither registered nor connected over xDS. They show states and names, never a secret
 * or a PEM; with `--http-token` they need a `read` token (or `peering` for a peering, the proxy's
 * own `service:<name>` for a proxy), as the operator's pages of a status API (src/api/auth.ts).
 */
export function registerTroubleshootRoutes(app: FastifyInstance, deps: TroubleshootDeps): void {
  app.get<{ Params: { name: string } }>(
    '/v1/troubleshoot/peering/:name',
    withAccess({ read: true, peering: true }),
    async (request): Promise<Checklist> =>
      peeringChecklist(gatherPeeringFacts(deps, request.params.name)),
  );
  app.get<{ Params: { id: string } }>(
    '/v1/troubleshoot/proxy/:id',
    withAccess({ read: true, service: instanceTarget(deps.catalog, 'id') }),
    async (request): Promise<Checklist> => {
      const id = request.params.id;
      if (!connectedHere(deps, id)) {
        const path = `/v1/troubleshoot/proxy/${encodeURIComponent(id)}`;
        const there = await fromProxyHolder(deps.cluster, request, id, path);
        if (there) return there.body as Checklist;
      }
      return proxyChecklist(gatherProxyFacts(deps, id));
    },
  );
  // One upstream of a proxy: its discovery chain, targets and their health (issue 16); the same
  // access as the proxy's own page.
  app.get<{ Params: { id: string; upstream: string } }>(
    '/v1/troubleshoot/upstream/:id/:upstream',
    withAccess({ read: true, service: instanceTarget(deps.catalog, 'id') }),
    async (request): Promise<UpstreamReport> => {
      const { id, upstream } = request.params;
      if (!connectedHere(deps, id)) {
        const path = `/v1/troubleshoot/upstream/${encodeURIComponent(id)}/${encodeURIComponent(upstream)}`;
        const there = await fromProxyHolder(deps.cluster, request, id, path);
        if (there) return there.body as UpstreamReport;
      }
      return upstreamReport(gatherUpstreamFacts(deps, id, upstream));
    },
  );
}

function connectedHere(deps: TroubleshootDeps, id: string): boolean {
  return deps.xds.streamStatuses().some((s) => s.nodeId === id);
}
