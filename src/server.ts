import {
  type FederationRole,
  type ServerConfig,
  federationRole,
  formatHostPort,
  httpExposureProblem,
  isthmusVersion,
  xdsPlaintextProblem,
  xdsPlaintextWarning,
} from './config/index.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { openStore, type Store } from './store/index.js';
import type { Leadership } from './store/store.js';
import { XdsServer } from './xds/server.js';
import { type XdsClientTls, XdsServerTls } from './xds/tls.js';
import { XdsCache } from './xds/cache/xds-cache.js';
import { SnapshotPublisher } from './xds/snapshot-publisher.js';
import { SnapshotManager } from './snapshot/manager.js';
import { LeafUsers } from './snapshot/leaf-users.js';
import { peeringView } from './snapshot/peering-view.js';
import { Catalog } from './catalog/catalog.js';
import { IsthmusError } from './errors.js';
import {
  type CaOptions,
  type CertificateAuthority,
  hasIntermediate,
  openCa,
  openSecondaryCa,
  saveJoinedCa,
} from './ca/index.js';
import { joinPrimary, primaryDialAddresses, readFederationSecret } from './federation/index.js';
import { startFederation } from './server/federation-parts.js';
import {
  type ApiTokens,
  type ProxyTokens,
  openApiTokens,
  openProxyTokens,
  xdsAuth,
} from './acl/index.js';
import type { Peerings } from './peering/peerings.js';
import type { PeeringServer } from './peering/server.js';
import type { ImportedServices } from './peering/imported.js';
import type { PeeringManager } from './peering/manager.js';
import type { DeclaredRoute } from './api/route-access.js';
import { ownerOf } from './api/service-targets.js';
import { startHttpApi } from './server/http-api.js';
import { advertisedPeeringAddresses, startPeering } from './server/peering-parts.js';
import { csdsFromOthers } from './server/csds-fanout.js';
import { ClusterMembers } from './server/members.js';
import { StartedParts, streamGraceMs } from './server/started-parts.js';

export interface RunningServer {
  readonly httpPort: number;
  /**
   * Every route the HTTP API serves, with the access it declares (the scope matrix test walks
   * them).
   */
  readonly httpRoutes: readonly DeclaredRoute[];
  readonly xdsPort: number;
  /** How clients verify the xDS port now (roots change with a CA rotation); undefined: plaintext. */
  xdsTls(): XdsClientTls | undefined;
  readonly peeringPort: number;
  /** The WAN federation port (undefined: not federated). */
  readonly federationPort: number | undefined;
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

/**
 * The composition root of `isthmus server` (docs/architecture.md §1). Each part is made once what
 * it needs exists, and registered for stopping as soon as it is made, so a failed start stops
 * exactly the parts made so far. Signal handling belongs to the caller (the CLI), so tests can run
 * several servers in one process.
 */
export async function startServer(
  config: ServerConfig,
  opts: { logger?: Logger } = {},
): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  const exposure = httpExposureProblem(config) ?? xdsPlaintextProblem(config);
  if (exposure) throw new IsthmusError('failed_precondition', exposure);
  if (config.xdsPlaintext) logger.warn(xdsPlaintextWarning);
  const parts = new StartedParts(logger);
  try {
    const server = await startParts(config, logger, parts);
    logStarted(logger, config, server);
    return server;
  } catch (err) {
    await parts.stopAll().catch(() => undefined);
    throw err;
  }
}

/** The parts in dependency order: each is made once what it needs exists. */
async function startParts(
  config: ServerConfig,
  logger: Logger,
  parts: StartedParts,
): Promise<RunningServer> {
  const metrics = new Metrics({ defaultMetrics: true, version: isthmusVersion() });
  const state = await openState(config, logger, parts);
  const { catalog, ca } = state;
  const cache = new XdsCache(metrics);
  const members = new ClusterMembers({
    store: state.store,
    config,
    leadership: state.leadership,
    logger: logger.child({ component: 'members' }),
  });
  const xds = await startXds(config, logger, metrics, cache, state, members, parts);
  const peering = await startPeering(
    {
      config,
      logger,
      metrics,
      ...state,
      clusterPeeringAddresses: () => members.peeringAddresses(),
    },
    parts,
  );
  const federation =
    state.federation.role.kind === 'none' || !state.federation.secret
      ? undefined
      : await startFederation(
          {
            config,
            logger,
            ...state,
            role: state.federation.role,
            secret: state.federation.secret,
            localServers: {
              list: () => members.wanServers(),
              subscribe: (fn) => members.subscribe(fn),
            },
          },
          parts,
        );
  // After peering: proxies are built from local state, imported services and peer bundles together.
  const snapshots = parts.add(
    'snapshots',
    new SnapshotManager({
      catalog,
      ca,
      sink: new SnapshotPublisher(cache),
      leafUsers: state.leafUsers,
      datacenter: config.datacenter,
      logger: logger.child({ component: 'snapshot' }),
      metrics,
      coalesceMs: config.coalesceMs,
      peering: peeringView(peering.peerings, peering.imported),
      localPeeringAddresses: () => advertisedPeeringAddresses(config, peering.port),
      federation: federation?.snapshots,
    }),
    (s) => s.stop(),
  );
  snapshots.start();
  const http = await startHttpApi(
    {
      config,
      logger,
      metrics,
      xds: xds.server,
      xdsPort: xds.port,
      catalog,
      ca,
      tokens: state.tokens,
      apiTokens: state.apiTokens,
      peering,
      snapshots,
      storeProblem: () => state.store.problem(),
      members,
      federation,
    },
    parts,
  );
  // Announced once every port is bound: the others reach this server at these addresses.
  members.join({
    http: http.port,
    xds: xds.port,
    peeringAddr: peering.leaderValue,
    ...(federation ? { federationAddr: federation.address } : {}),
  });
  return {
    httpPort: http.port,
    httpRoutes: http.routes,
    xdsPort: xds.port,
    xdsTls: () => xds.server.clientTls(),
    peeringPort: peering.port,
    federationPort: federation?.port,
    catalog,
    ca,
    snapshots,
    peerings: peering.peerings,
    peeringServer: peering.peeringServer,
    imported: peering.imported,
    peeringManager: peering.peeringManager,
    stop: () => parts.stopAll(),
  };
}

/** The election, joined once the peering port is bound; read by parts made before that. */
export interface LeadershipSlot {
  current: Leadership | undefined;
}

interface State {
  readonly leadership: LeadershipSlot;
  readonly store: Store;
  readonly catalog: Catalog;
  readonly ca: CertificateAuthority;
  readonly tokens: ProxyTokens;
  readonly apiTokens: ApiTokens;
  readonly leafUsers: LeafUsers;
  readonly federation: { readonly role: FederationRole; readonly secret: Buffer | undefined };
}

/** The Store and the local state on it: catalog, CA, proxy tokens and HTTP API tokens. */
async function openState(
  config: ServerConfig,
  logger: Logger,
  parts: StartedParts,
): Promise<State> {
  const leadership: LeadershipSlot = { current: undefined };
  const role = federationRole(config);
  const secret =
    role.kind === 'none' ? undefined : await readFederationSecret(config.federationSecretFile);
  const store = parts.add('store', await openStore(config, logger), (s) => s.close());
  // Servers sharing etcd leave once-per-cluster work to the leader, which is elected once the
  // peering port is bound (its address is what the leader publishes): CA rotation and the expiry
  // of TTL checks.
  const shared = config.store === 'etcd';
  const isLeader = () => leadership.current?.isLeader() ?? false;
  const catalog = parts.add(
    'catalog',
    await Catalog.open(store, {
      datacenter: config.datacenter,
      logger: logger.child({ component: 'catalog' }),
      ...(shared ? { isLeader } : {}),
      configEntriesFrom: role.kind === 'secondary' ? role.primary : undefined,
    }),
    (c) => c.close(),
  );
  // The CA renews only the leaves some proxy is built with, and the snapshot manager, which records
  // that, needs the CA to exist. LeafUsers, made before both, is all they share.
  const leafUsers = new LeafUsers();
  // Servers sharing etcd keep the CA's keys in it.
  const caOptions: CaOptions = {
    dataDir: config.dataDir,
    ...(shared ? { keysInStore: true, isLeader } : {}),
    logger: logger.child({ component: 'ca' }),
    rotation: { phaseMs: config.caRotationPhaseMs },
    // A proxy's leaf lives while the proxy is built with its identity; the server's own leaves
    // (the peering server's, with DNS SANs) are kept without a proxy.
    leafInUse: (identity) =>
      identity.holder !== undefined
        ? leafUsers.holds(identity.holder, identity.spiffeId)
        : (identity.dnsSans?.length ?? 0) > 0 || leafUsers.uses(identity.spiffeId),
  };
  const ca = parts.add(
    'ca',
    role.kind === 'secondary' && secret
      ? await openFederatedCa(store, catalog, config, role, secret, caOptions, logger)
      : await openCa(store, caOptions),
    (c) => c.close(),
  );
  const tokens = parts.add(
    'acl',
    await openProxyTokens(store, { logger: logger.child({ component: 'acl' }) }),
    (t) => t.close(),
  );
  const apiTokens = parts.add(
    'api tokens',
    await openApiTokens(store, { logger: logger.child({ component: 'acl' }) }),
    (t) => t.close(),
  );
  return {
    store,
    catalog,
    ca,
    tokens,
    apiTokens,
    leafUsers,
    leadership,
    federation: { role, secret },
  };
}

/**
 * A secondary's CA (docs/architecture.md §6c): on first start it joins the primary through the
 * gateways (its own exposing ones, else `--primary-gateways`) and keeps the intermediate the
 * primary signed; the server starts serving once it has one.
 */
async function openFederatedCa(
  store: Store,
  catalog: Catalog,
  config: ServerConfig,
  role: Extract<FederationRole, { kind: 'secondary' }>,
  secret: Buffer,
  caOptions: CaOptions,
  logger: Logger,
): Promise<CertificateAuthority> {
  if (!(await hasIntermediate(store))) {
    const primaryGateways = config.primaryGateways.map((g) => formatHostPort(g));
    const joined = await joinPrimary({
      datacenter: config.datacenter,
      primary: role.primary,
      addresses: () => primaryDialAddresses(catalog, config.datacenter, primaryGateways),
      secret,
      logger: logger.child({ component: 'federation' }),
    });
    await saveJoinedCa(store, caOptions, joined);
  }
  return openSecondaryCa(store, { ...caOptions, primaryDatacenter: role.primary });
}

/**
 * The xDS server around the cache, listening at once: streams see empty views until their proxy is
 * built.
 */
async function startXds(
  config: ServerConfig,
  logger: Logger,
  metrics: Metrics,
  cache: XdsCache,
  state: Pick<State, 'tokens' | 'ca' | 'apiTokens' | 'catalog'>,
  members: ClusterMembers,
  parts: StartedParts,
): Promise<{ server: XdsServer; port: number }> {
  const { tokens, ca, apiTokens, catalog } = state;
  const tls = config.xdsPlaintext
    ? undefined
    : new XdsServerTls({ ca, datacenter: config.datacenter, extraSans: config.xdsTlsSan, logger });
  const xds = parts.add(
    'xds',
    new XdsServer({
      logger,
      metrics,
      cache,
      maxStreams: config.xdsMaxStreams,
      maxStreamsPerToken: config.xdsMaxStreamsPerToken,
      maxRequestBytes: config.xdsMaxRequestBytes,
      admissionTimeoutMs: config.xdsAdmissionTimeoutMs,
      ...xdsAuth(config.xdsAuth, tokens, logger),
      httpToken: config.httpToken,
      csdsScopeOf: (presented) => apiTokens.scopeOf(presented),
      proxyOwner: (nodeId) => ownerOf(catalog.instance(nodeId)),
      csdsRemote: csdsFromOthers(members, logger.child({ component: 'csds' })),
      tls,
    }),
    (x) => x.shutdown(streamGraceMs),
  );
  // A deleted token ends the streams it admitted, not only future ones.
  tokens.onRevoked((proxyId) => xds.reauthorize(proxyId));
  return { server: xds, port: await xds.listen(formatHostPort(config.xdsAddr)) };
}

function logStarted(logger: Logger, config: ServerConfig, server: RunningServer): void {
  const { httpPort, xdsPort, peeringPort } = server;
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
      ...(server.federationPort === undefined
        ? {}
        : {
            federationAddr: formatHostPort(config.federationAddr, server.federationPort),
            federationPort: server.federationPort,
          }),
    },
    'server started',
  );
}
