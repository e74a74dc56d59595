import type { FastifyInstance } from 'fastify';
import { meshGatewayPeeringAddresses } from './peering/through-gateways.js';
import { createHttpApi, type Health } from './api/http.js';
import { type ServerConfig, formatHostPort, isthmusVersion } from './config/index.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { openLmdbStore, type Store } from './store/index.js';
import { XdsServer } from './xds/server.js';
import { XdsCache } from './xds/cache/xds-cache.js';
import { SnapshotManager } from './snapshot/manager.js';
import { peeringView } from './snapshot/peering-view.js';
import { Catalog } from './catalog/catalog.js';
import { installHttpAuth } from './api/auth.js';
import { registerCatalogRoutes } from './api/catalog-routes.js';
import { registerConfigRoutes } from './api/config-routes.js';
import { httpExposureProblem } from './config/index.js';
import { IsthmusError } from './errors.js';
import { type CertificateAuthority, openCa } from './ca/index.js';
import { type ProxyTokens, openProxyTokens, xdsAuthorizer } from './acl/index.js';
import { registerCaRoutes } from './api/ca-routes.js';
import { registerAclRoutes } from './api/acl-routes.js';
import { registerPeeringRoutes } from './api/peering-routes.js';
import { registerTroubleshootRoutes } from './api/troubleshoot-routes.js';
import { Peerings, type LocalPeeringInfo } from './peering/peerings.js';
import { PeeringServer } from './peering/server.js';
import { type EstablishInput, establishPeering } from './peering/establish.js';
import { type Peering, heartbeatAgeSeconds, isHealthy } from './peering/types.js';
import { peeringServerName } from './mesh/names.js';
import { ImportedServices } from './peering/imported.js';
import { PeeringManager } from './peering/manager.js';

export interface RunningServer {
  readonly httpPort: number;
  readonly xdsPort: number;
  readonly peeringPort: number;
  /** Services, health and config entries (what the snapshot layer reads). */
  readonly catalog: Catalog;
  /** The cluster's built-in CA (roots, leaves, rotation events). */
  readonly ca: CertificateAuthority;
  /** Keeps every registered proxy's xDS view current (tests await `snapshots.settled()`). */
  readonly snapshots: SnapshotManager;
  /** Peering records and secrets (tokens, exchange, stream status, events). */
  readonly peerings: Peerings;
  /** The TLS peering port (ExchangeSecret, and the replication stream's acceptor end). */
  readonly peeringServer: PeeringServer;
  /** Services imported from cluster peers, by the local name of the peering. */
  readonly imported: ImportedServices;
  /** The replication streams: the acceptor end, one dialer per established peering. */
  readonly peeringManager: PeeringManager;
  /** Graceful stop: readiness fails at once, then xDS streams, HTTP and the store are closed. */
  stop(): Promise<void>;
}

/** How long xDS streams get to end on their own before they are cut (part of the 10 s budget). */
const xdsGraceMs = 5_000;

/** What a server consists of; parts are set as they are created, so a failed start closes only those. */
interface Parts {
  store?: Store;
  catalog?: Catalog;
  ca?: CertificateAuthority;
  tokens?: ProxyTokens;
  xds?: XdsServer;
  snapshots?: SnapshotManager;
  peerings?: Peerings;
  peeringServer?: PeeringServer;
  imported?: ImportedServices;
  peeringManager?: PeeringManager;
  /** The dialer side of `POST /v1/peering/establish`. */
  establish?: (input: EstablishInput) => Promise<Peering>;
  http?: FastifyInstance;
  shuttingDown: boolean;
}

/**
 * The composition root of `isthmus server`. Signal handling belongs to the caller (the CLI), so
 * tests can run several servers in one process.
 */
export async function startServer(
  config: ServerConfig,
  opts: { logger?: Logger } = {},
): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  const parts: Parts = { shuttingDown: false };
  try {
    const { httpPort, xdsPort, peeringPort } = await startParts(config, logger, parts);
    logStarted(logger, config, httpPort, xdsPort, peeringPort);
    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => (stopping ??= stopParts(parts, logger));
    const { catalog, ca, snapshots, peerings, peeringServer, imported, peeringManager } =
      parts as Required<Parts>;
    return {
      httpPort,
      xdsPort,
      peeringPort,
      catalog,
      ca,
      snapshots,
      peerings,
      peeringServer,
      imported,
      peeringManager,
      stop,
    };
  } catch (err) {
    await stopParts(parts, logger).catch(() => undefined);
    throw err;
  }
}

async function startParts(
  config: ServerConfig,
  logger: Logger,
  parts: Parts,
): Promise<{ httpPort: number; xdsPort: number; peeringPort: number }> {
  const metrics = new Metrics({ defaultMetrics: true, version: isthmusVersion() });
  const exposure = httpExposureProblem(config);
  if (exposure) throw new IsthmusError('failed_precondition', exposure);
  parts.store = await openLmdbStore(config.dataDir, { logger });
  parts.catalog = await Catalog.open(parts.store, {
    datacenter: config.datacenter,
    logger: logger.child({ component: 'catalog' }),
  });
  parts.ca = await openCa(parts.store, {
    dataDir: config.dataDir,
    logger: logger.child({ component: 'ca' }),
    rotation: { phaseMs: config.caRotationPhaseMs },
    // Leaves of services no proxy uses any more are not renewed. Identities with DNS SANs (the
    // peering server's) and any asked for before the snapshots exist are always kept.
    leafInUse: (identity) =>
      (identity.dnsSans?.length ?? 0) > 0 ||
      parts.snapshots === undefined ||
      parts.snapshots.usesIdentity(identity.spiffeId),
  });
  parts.tokens = await openProxyTokens(parts.store, { logger: logger.child({ component: 'acl' }) });
  const authorize = xdsAuthorizer(config.xdsAuth, parts.tokens, logger);
  const cache = new XdsCache(metrics);
  const xds = new XdsServer({
    logger,
    metrics,
    cache,
    maxStreams: config.xdsMaxStreams,
    authorize,
    httpToken: config.httpToken,
  });
  parts.xds = xds;
  // A deleted token ends the streams it admitted, not only future ones.
  parts.tokens.onRevoked((proxyId) => xds.reauthorize(proxyId));
  const xdsPort = await xds.listen(formatHostPort(config.xdsAddr));
  const peeringPort = await startPeering(config, logger, parts, metrics);
  // After peering: proxies are built from local state, imported services and peer bundles together.
  parts.snapshots = new SnapshotManager({
    catalog: parts.catalog,
    ca: parts.ca,
    cache,
    datacenter: config.datacenter,
    logger: logger.child({ component: 'snapshot' }),
    metrics,
    coalesceMs: config.coalesceMs,
    peering: peeringView(parts.peerings!, parts.imported!),
    localPeeringAddresses: () => advertisedPeeringAddresses(config, peeringPort),
  });
  parts.snapshots.start();
  const http = createHttpApi({
    logger,
    metrics,
    health: healthOf(parts),
    xds,
    catalog: parts.catalog,
  });
  parts.http = http;
  installHttpAuth(http, config.httpToken);
  const imported = parts.imported!;
  registerCatalogRoutes(http, {
    catalog: parts.catalog,
    // By instance name, as Consul answers: `api?peer=` gives api's instances and
    // `api-sidecar-proxy?peer=` the synthetic sidecars (both are replicated under `api`).
    importedInstances: (peer, name, namespace) =>
      imported.allOf(peer).filter((i) => i.name === name && i.namespace === namespace),
    importedServices: (peer) => imported.allOf(peer),
  });
  registerConfigRoutes(http, parts.catalog);
  registerCaRoutes(http, parts.ca);
  registerAclRoutes(http, parts.tokens);
  const peerings = parts.peerings!;
  const ca = parts.ca;
  registerPeeringRoutes(http, {
    peerings,
    catalog: parts.catalog,
    establish: parts.establish!,
    healthyWindowMs: config.peeringHeartbeatTimeoutMs,
  });
  registerTroubleshootRoutes(http, {
    datacenter: config.datacenter,
    catalog: parts.catalog,
    ca,
    peerings,
    imported,
    xds,
    heartbeatTimeoutMs: config.peeringHeartbeatTimeoutMs,
  });
  await http.listen({ host: config.httpAddr.host, port: config.httpAddr.port });
  const address = http.server.address();
  const httpPort =
    typeof address === 'object' && address !== null ? address.port : config.httpAddr.port;
  return { httpPort, xdsPort, peeringPort };
}

/** Opens the peering records, serves the peering port and feeds the isthmus_peering_* gauges. */
async function startPeering(
  config: ServerConfig,
  logger: Logger,
  parts: Parts,
  metrics: Metrics,
): Promise<number> {
  const ca = parts.ca!;
  const peeringLogger = logger.child({ component: 'peering' });
  let boundPort = config.peeringAddr.port;
  const local: LocalPeeringInfo = {
    datacenter: config.datacenter,
    partition: 'default',
    serverName: peeringServerName(ca.trustDomain, config.datacenter),
    rootPems: () => ca.roots().roots.map((r) => r.certPem),
    serverAddresses: () => advertisedPeeringAddresses(config, boundPort),
    meshGatewayAddresses: () =>
      meshGatewayPeeringAddresses(parts.catalog!, config.datacenter, 'wan'),
  };
  const localGatewayAddresses = () =>
    meshGatewayPeeringAddresses(parts.catalog!, config.datacenter, 'lan');
  const peerings = await Peerings.open(parts.store!, { local, logger: peeringLogger });
  parts.peerings = peerings;
  parts.establish = (input) =>
    establishPeering(
      { peerings, ca, datacenter: config.datacenter, logger: peeringLogger, localGatewayAddresses },
      input,
    );
  parts.imported = await ImportedServices.open(parts.store!, { logger: peeringLogger });
  parts.peeringServer = new PeeringServer({
    peerings,
    ca,
    datacenter: config.datacenter,
    logger: peeringLogger,
  });
  parts.peeringManager = new PeeringManager({
    peerings,
    peeringServer: parts.peeringServer,
    catalog: parts.catalog!,
    ca,
    imported: parts.imported,
    datacenter: config.datacenter,
    logger: peeringLogger,
    // Replicated to dialers: our gateways' WAN addresses when peering through them.
    serverAddresses: () => {
      const viaGateways = local.meshGatewayAddresses!();
      return viaGateways.length > 0 ? viaGateways : local.serverAddresses();
    },
    localGatewayAddresses,
    heartbeatIntervalMs: config.peeringHeartbeatMs,
    heartbeatTimeoutMs: config.peeringHeartbeatTimeoutMs,
  });
  boundPort = await parts.peeringServer.listen(formatHostPort(config.peeringAddr));
  // The manager's deletion hook (telling the peer) is installed before deletions resume.
  await parts.peeringManager.start();
  peerings.resumeDeletions();
  metrics.peeringRows = () => {
    const now = Date.now();
    // A generated token nobody used yet is not a broken peering: no series until it is established.
    return peerings
      .list()
      .filter((p) => p.state !== 'PENDING')
      .map((p) => ({
        peerName: p.name,
        healthy: isHealthy(p, now, config.peeringHeartbeatTimeoutMs),
        exportedServices: p.streamStatus.exportedServices.length,
        importedServices: p.streamStatus.importedServices.length,
        lastHeartbeatAgeSeconds: heartbeatAgeSeconds(p, now),
      }));
  };
  return boundPort;
}

/** `--advertise-addr`, else the bound peering address unless it is a wildcard (not dialable). */
function advertisedPeeringAddresses(config: ServerConfig, boundPort: number): string[] {
  if (config.advertiseAddr) return [formatHostPort(config.advertiseAddr)];
  const host = config.peeringAddr.host;
  if (host === '0.0.0.0' || host === '::') return [];
  return [formatHostPort(config.peeringAddr, boundPort)];
}

/** Ready = the store is open, xDS is listening and no shutdown has begun. */
function healthOf(parts: Parts): Health {
  const notReady = (): string[] => {
    const reasons: string[] = [];
    if (!parts.store) reasons.push('store not open');
    if (!parts.xds?.listening) reasons.push('xds server not listening');
    if (parts.shuttingDown) reasons.push('shutting down');
    return reasons;
  };
  return { ready: () => notReady().length === 0, notReady };
}

function logStarted(
  logger: Logger,
  config: ServerConfig,
  httpPort: number,
  xdsPort: number,
  peeringPort: number,
): void {
  logger.info(
    {
      version: isthmusVersion(),
      datacenter: config.datacenter,
      dataDir: config.dataDir,
      httpAddr: formatHostPort(config.httpAddr, httpPort),
      xdsAddr: formatHostPort(config.xdsAddr, xdsPort),
      peeringAddr: formatHostPort(config.peeringAddr, peeringPort),
      httpPort,
      xdsPort,
      peeringPort,
    },
    'server started',
  );
}

/**
 * Shutdown order: readiness first (load balancers stop sending), then xDS (GOAWAY, so proxies
 * reconnect to another server), then HTTP, then the store. Every step runs even if one fails.
 */
async function stopParts(parts: Parts, logger: Logger): Promise<void> {
  parts.shuttingDown = true;
  logger.info('server stopping');
  const {
    xds,
    http,
    catalog,
    ca,
    tokens,
    store,
    snapshots,
    peerings,
    peeringServer,
    peeringManager,
  } = parts;
  const steps: [string, (() => Promise<void>) | undefined][] = [
    ['xds', xds && (() => xds.shutdown(xdsGraceMs))],
    ['peering streams', peeringManager && (() => peeringManager.close())],
    ['peering server', peeringServer && (() => peeringServer.shutdown(xdsGraceMs))],
    ['snapshots', snapshots && (() => snapshots.stop())],
    ['http', http && (() => http.close())],
    ['catalog', catalog && (() => catalog.close())],
    ['peerings', peerings && (() => peerings.close())],
    ['ca', ca && (() => ca.close())],
    ['acl', tokens && (async () => tokens.close())],
    ['store', store && (() => store.close())],
  ];
  let failure: unknown;
  for (const [part, step] of steps) {
    try {
      await step?.();
    } catch (err) {
      failure ??= err;
      logger.error({ err, part }, 'shutdown step failed');
    }
  }
  parts.store = undefined;
  if (failure !== undefined) throw failure;
  logger.info('server stopped');
}
