import type { FastifyInstance } from 'fastify';
import { installHttpAuth } from '../api/auth.js';
import { registerAclRoutes } from '../api/acl-routes.js';
import { registerCaRoutes } from '../api/ca-routes.js';
import { registerCatalogRoutes } from '../api/catalog-routes.js';
import { registerConfigRoutes } from '../api/config-routes.js';
import { forwardedRequestMarker, installFederationForwarding } from '../api/federation-forward.js';
import { registerFederationRoutes } from '../api/federation-routes.js';
import { type Health, createHttpApi } from '../api/http.js';
import { type WanServerJson, registerOperatorRoutes } from '../api/operator-routes.js';
import { registerPeeringRoutes } from '../api/peering-routes.js';
import { followOtherServers } from '../api/ui-relay.js';
import { type DeclaredRoute, declaredRoutes, requireRouteAccess } from '../api/route-access.js';
import { registerTroubleshootRoutes } from '../api/troubleshoot-routes.js';
import { registerUiRoutes } from '../api/ui-routes.js';
import type { ApiTokens, ProxyTokens } from '../acl/index.js';
import type { CertificateAuthority } from '../ca/index.js';
import type { Catalog } from '../catalog/catalog.js';
import { type ServerConfig, formatHostPort, isthmusVersion } from '../config/index.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { peeringView } from '../snapshot/peering-view.js';
import type { XdsServer } from '../xds/server.js';
import type { ClusterMembers } from './members.js';
import type { FederationParts } from './federation-parts.js';
import type { PeeringParts } from './peering-parts.js';
import type { StartedParts } from './started-parts.js';

export interface HttpApiParts {
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly xds: XdsServer;
  /** The bound xDS port (the web UI shows where this server listens). */
  readonly xdsPort: number;
  readonly catalog: Catalog;
  readonly ca: CertificateAuthority;
  readonly tokens: ProxyTokens;
  readonly apiTokens: ApiTokens;
  readonly peering: PeeringParts;
  /** The first build of every restored proxy (readiness waits for it). */
  readonly snapshots: { readonly proxiesWithoutSnapshot: number };
  /** Why the store takes no writes now (etcd unreachable); readiness reports it. */
  readonly storeProblem: () => string | undefined;
  /** The servers of this cluster (fan-out of per-server status, `/v1/operator/servers`). */
  readonly members: ClusterMembers;
  /** WAN federation (absent: not federated). */
  readonly federation?: FederationParts | undefined;
}

/**
 * Builds the HTTP API with every route and listens; resolves with the bound port and the routes.
 */
export async function startHttpApi(
  deps: HttpApiParts,
  parts: StartedParts,
): Promise<{ port: number; routes: readonly DeclaredRoute[] }> {
  const { config, xds, catalog, ca, peering } = deps;
  const { imported, peerings } = peering;
  const httpPort = (): number => {
    const address = http.server.address();
    return typeof address === 'object' && address !== null ? address.port : config.httpAddr.port;
  };
  const http: FastifyInstance = parts.add(
    'http',
    createHttpApi({
      logger: deps.logger,
      metrics: deps.metrics,
      health: healthOf(parts, xds, deps.snapshots, deps.storeProblem),
      xds,
      catalog,
      cluster: deps.members,
      limits: {
        maxBodyBytes: config.httpMaxBodyBytes,
        maxConnections: config.httpMaxConnections,
      },
    }),
    (h) => h.close(),
  );
  requireRouteAccess(http);
  const forwardedMarker = forwardedRequestMarker();
  installHttpAuth(http, { token: config.httpToken, apiTokens: deps.apiTokens, forwardedMarker });
  // After the auth hooks: a request is checked here before it is forwarded anywhere (§6c).
  const runForwarded = installFederationForwarding(http, {
    datacenter: config.datacenter,
    forwarding: deps.federation?.forwarding,
    marker: forwardedMarker,
  });
  registerCatalogRoutes(http, {
    catalog,
    // By instance name, as Consul answers: `api?peer=` gives api's instances and
    // `api-sidecar-proxy?peer=` the synthetic sidecars (both are replicated under `api`).
    importedInstances: (peer, name, namespace) =>
      imported.allOf(peer).filter((i) => i.name === name && i.namespace === namespace),
    importedServices: (peer) => imported.allOf(peer),
  });
  // A service-resolver may name the peerings that exist and are not being deleted.
  const peers = peeringView(peerings, imported);
  registerConfigRoutes(http, catalog, { peers: () => peers.peerNames() });
  registerCaRoutes(http, ca);
  registerOperatorRoutes(http, deps.members, () => wanServers(deps, config.datacenter));
  registerFederationRoutes(http, {
    datacenter: config.datacenter,
    datacenters: () => deps.federation?.datacenters() ?? [config.datacenter],
    states: () => deps.federation?.states.all() ?? [],
    replication: () => deps.federation?.replication(),
  });
  registerAclRoutes(http, deps.tokens, deps.apiTokens);
  registerPeeringRoutes(http, {
    peerings,
    catalog,
    establish: peering.establish,
    healthyWindowMs: config.peeringHeartbeatTimeoutMs,
  });
  const troubleshoot = {
    datacenter: config.datacenter,
    catalog,
    ca,
    peerings,
    imported,
    xds,
    heartbeatTimeoutMs: config.peeringHeartbeatTimeoutMs,
    cluster: deps.members,
  };
  registerTroubleshootRoutes(http, troubleshoot);
  registerUiRoutes(http, {
    views: {
      datacenter: config.datacenter,
      version: isthmusVersion(),
      addresses: () => ({
        http: formatHostPort(config.httpAddr, httpPort()),
        xds: formatHostPort(config.xdsAddr, deps.xdsPort),
        peering: formatHostPort(config.peeringAddr, peering.port),
      }),
      catalog,
      roots: () => ca.roots(),
      peerings,
      imported,
      connectedProxies: () => xds.streamStatuses().flatMap((s) => s.nodeId ?? []),
      healthyWindowMs: config.peeringHeartbeatTimeoutMs,
      servers: () => deps.members.servers(),
    },
    troubleshoot,
    events: {
      subscriptions: [
        { topic: 'catalog', subscribe: (l) => catalog.subscribe(l) },
        { topic: 'peerings', subscribe: (l) => peerings.subscribe(l) },
        { topic: 'peerings', subscribe: (l) => imported.subscribe(l) },
        { topic: 'ca', subscribe: (l) => ca.subscribe(l) },
        // A server joins or leaves: the overview's server list and the proxies it holds.
        { topic: 'proxies', subscribe: (l) => deps.members.subscribe(l) },
      ],
      proxies: (l) => xds.onProxyStateChange(l),
      otherServers: (headers, onProxies) => followOtherServers(deps.members, headers, onProxies),
    },
  });
  await http.listen({ host: config.httpAddr.host, port: config.httpAddr.port });
  deps.federation?.serveForwarded(runForwarded);
  return { port: httpPort(), routes: declaredRoutes(http) };
}

/**
 * Ready = what a load balancer needs before sending traffic here: the store is restored and
 * reachable, xDS is listening, every proxy restored from the store has its first snapshot built and
 * published to the xDS cache (so a proxy that connects gets its whole config, not an empty one), and no shutdown has
 * begun. Each check is a field read: probes cost no store access and no build.
 */
function healthOf(
  parts: StartedParts,
  xds: XdsServer,
  snapshots: HttpApiParts['snapshots'],
  storeProblem: () => string | undefined,
): Health {
  const pending = (): Record<string, number> => {
    const proxiesWithoutSnapshot = parts.shuttingDown ? 0 : snapshots.proxiesWithoutSnapshot;
    return proxiesWithoutSnapshot > 0 ? { proxiesWithoutSnapshot } : {};
  };
  const notReady = (): string[] => {
    const reasons: string[] = [];
    if (!parts.has('store')) reasons.push('store not open');
    // Proxies keep their last config meanwhile; writes answer 503 until the store is back.
    const problem = parts.has('store') ? storeProblem() : undefined;
    if (problem) reasons.push(`store unavailable (${problem})`);
    if (!xds.listening) reasons.push('xds server not listening');
    const waiting = pending().proxiesWithoutSnapshot;
    if (waiting) reasons.push(`${waiting} restored proxies without their first snapshot`);
    if (parts.shuttingDown) reasons.push('shutting down');
    return reasons;
  };
  return { ready: () => notReady().length === 0, notReady, pending };
}

/**
 * `members --wan`: every server of every federated datacenter; without federation, this cluster's
 * servers (alive, no federation address), as Consul lists its own servers.
 */
function wanServers(
  deps: Pick<HttpApiParts, 'members' | 'federation'>,
  datacenter: string,
): WanServerJson[] {
  const self = deps.members.self;
  if (!deps.federation)
    return deps.members.servers().map((s) => ({
      Name: s.Name,
      Address: '',
      Datacenter: datacenter,
      Status: 'alive',
      StatusSince: s.StartedAt,
      Leader: s.Leader,
      Primary: false,
      Self: s.Self,
    }));
  return deps.federation.wanMembers().map((m) => ({
    Name: m.name,
    Address: m.address,
    Datacenter: m.datacenter,
    Status: m.status,
    StatusSince: new Date(m.since).toISOString(),
    Leader: m.leader,
    Primary: m.primary,
    Self: m.datacenter === datacenter && m.name === self,
  }));
}
