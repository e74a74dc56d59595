import type { FederationForwarding } from '../api/federation-forward.js';
import type { FederatedCa } from '../ca/index.js';
import type { CertificateAuthority } from '../ca/index.js';
import type { Catalog } from '../catalog/catalog.js';
import { type FederationRole, type ServerConfig, formatHostPort } from '../config/index.js';
import {
  type ForwardHandler,
  FederationForwarder,
  FederationReplicator,
  FederationServer,
  FederationStates,
  type LocalServers,
  type ReplicationStatus,
  type WanMember,
  federationView,
  knownDatacenters,
  localFederationState,
  wanMembers,
} from '../federation/index.js';
import type { Logger } from '../log.js';
import type { FederationView } from '../snapshot/context.js';
import type { Store } from '../store/index.js';
import type { StartedParts } from './started-parts.js';

/** WAN federation as the rest of the server sees it (docs/architecture.md §6c). */
export interface FederationParts {
  readonly role: FederationRole;
  readonly states: FederationStates;
  readonly port: number;
  /** This server's federation address (`host:port`), announced to its cluster's members. */
  readonly address: string;
  /** What proxies are built from, and when to rebuild them. */
  readonly snapshots: { view: FederationView; subscribe(listener: () => void): () => void };
  datacenters(): string[];
  /** A secondary's link to the primary (undefined on the primary). */
  replication(): ReplicationStatus | undefined;
  /** Every server of every datacenter known, with its state (`isthmus members --wan`). */
  wanMembers(): WanMember[];
  /** Requests for another datacenter's servers, through the gateways (§6c). */
  readonly forwarding: FederationForwarding;
  /** Answers requests other datacenters forward here (the HTTP API's forwardable routes). */
  serveForwarded(handler: ForwardHandler): void;
}

export interface FederationDeps {
  readonly config: ServerConfig;
  readonly role: Exclude<FederationRole, { kind: 'none' }>;
  readonly logger: Logger;
  readonly store: Store;
  readonly catalog: Catalog;
  readonly ca: CertificateAuthority;
  readonly secret: Buffer;
  /** This datacenter's servers with their federation addresses (its membership). */
  readonly localServers: LocalServers;
}

/**
 * The federation port, the federation states and, on a secondary, the replication stream. The
 * primary records its own state from its catalog; a secondary reports its own to the primary and
 * takes the whole set back.
 */
export async function startFederation(
  deps: FederationDeps,
  parts: StartedParts,
): Promise<FederationParts> {
  const { config, role, catalog, ca, store, secret, localServers } = deps;
  const startedAt = Date.now();
  const logger = deps.logger.child({ component: 'federation' });
  const { datacenter } = config;
  // Part of the federation TLS name `<node>.server.<dc>.consul`; `server-1` when none is given.
  const nodeName = config.nodeName || 'server-1';
  const states = await FederationStates.open(store, logger);
  const server = new FederationServer({
    role,
    datacenter,
    nodeName,
    ca,
    catalog,
    states,
    secret,
    logger,
  });
  const running: { replicator?: FederationReplicator; off?: () => void } = {};
  parts.add('federation', running, async (r) => {
    r.off?.();
    await r.replicator?.stop();
    await server.stop();
  });
  const port = await server.listen(formatHostPort(config.federationAddr));
  let replicator: FederationReplicator | undefined;
  if (role.kind === 'primary') {
    const record = () =>
      void states.put(localFederationState(catalog, datacenter, localServers.list(), Date.now()));
    record();
    const offCatalog = catalog.subscribe((e) => {
      if (e.kind !== 'config-entry-changed' && e.instance.kind === 'mesh-gateway') record();
    });
    const offServers = localServers.subscribe(record);
    running.off = () => {
      offCatalog();
      offServers();
    };
  } else {
    replicator = new FederationReplicator({
      datacenter,
      primary: role.primary,
      nodeName,
      primaryGateways: config.primaryGateways.map((g) => formatHostPort(g)),
      catalog,
      ca: ca as FederatedCa,
      secret,
      states,
      localServers,
      logger,
    });
    running.replicator = replicator;
    replicator.start();
  }
  const address = formatHostPort(config.federationAddr, port);
  const addresses = [address];
  const primary = role.kind === 'primary' ? datacenter : role.primary;
  const forwarder = new FederationForwarder({
    datacenter,
    primary,
    nodeName,
    primaryGateways: config.primaryGateways.map((g) => formatHostPort(g)),
    catalog,
    states,
    ca,
  });
  const datacenters = () => knownDatacenters(states, datacenter);
  return {
    role,
    states,
    port,
    address,
    snapshots: {
      view: federationView(states, { datacenter, nodeName, addresses: () => addresses }),
      subscribe: (l) => states.subscribe(l),
    },
    datacenters,
    replication: () => replicator?.status(),
    wanMembers: () =>
      wanMembers({
        datacenter,
        primary,
        startedAt,
        local: localServers.list(),
        states: states.all(),
        link: (dc) => (replicator ? replicator.linkOf(dc) : server.linkOf(dc)),
      }),
    forwarding: {
      datacenter,
      primary,
      datacenters,
      forward: (dc, call) => forwarder.forward(dc, call),
      replicated: async (run, index, timeoutMs) =>
        replicator ? replicator.applied(run, index, timeoutMs) : true,
    },
    serveForwarded: (handler) => server.serveForwarded(handler),
  };
}
