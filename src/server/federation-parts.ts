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
  type ReplicationStatus,
  federationView,
  knownDatacenters,
  localFederationState,
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
  /** What proxies are built from, and when to rebuild them. */
  readonly snapshots: { view: FederationView; subscribe(listener: () => void): () => void };
  datacenters(): string[];
  /** A secondary's link to the primary (undefined on the primary). */
  replication(): ReplicationStatus | undefined;
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
  const { config, role, catalog, ca, store, secret } = deps;
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
    const record = () => void states.put(localFederationState(catalog, datacenter, Date.now()));
    record();
    running.off = catalog.subscribe((e) => {
      if (e.kind !== 'config-entry-changed' && e.instance.kind === 'mesh-gateway') record();
    });
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
      logger,
    });
    running.replicator = replicator;
    replicator.start();
  }
  const addresses = [formatHostPort(config.federationAddr, port)];
  const forwarder = new FederationForwarder({
    datacenter,
    primary: role.kind === 'primary' ? datacenter : role.primary,
    nodeName,
    primaryGateways: config.primaryGateways.map((g) => formatHostPort(g)),
    catalog,
    states,
    ca,
  });
  return {
    role,
    states,
    port,
    snapshots: {
      view: federationView(states, { datacenter, nodeName, addresses: () => addresses }),
      subscribe: (l) => states.subscribe(l),
    },
    datacenters: () => knownDatacenters(states, datacenter),
    replication: () => replicator?.status(),
    forwarding: {
      datacenter,
      primary: forwarder.primary,
      datacenters: () => knownDatacenters(states, datacenter),
      forward: (dc, call) => forwarder.forward(dc, call),
      replicated: async (run, index, timeoutMs) =>
        replicator ? replicator.applied(run, index, timeoutMs) : true,
    },
    serveForwarded: (handler) => server.serveForwarded(handler),
  };
}
