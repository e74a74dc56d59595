import type { CertificateAuthority } from '../ca/index.js';
import type { Catalog } from '../catalog/catalog.js';
import { type ServerConfig, formatHostPort } from '../config/index.js';
import type { Logger } from '../log.js';
import { peeringServerName } from '../mesh/names.js';
import type { Metrics } from '../metrics.js';
import { type EstablishInput, establishPeering } from '../peering/establish.js';
import { ImportedServices } from '../peering/imported.js';
import { PeeringManager } from '../peering/manager.js';
import { type LocalPeeringInfo, Peerings } from '../peering/peerings.js';
import { PeeringServer } from '../peering/server.js';
import { meshGatewayPeeringAddresses } from '../peering/through-gateways.js';
import { type Peering, heartbeatAgeSeconds, isHealthy } from '../peering/types.js';
import type { Store } from '../store/index.js';
import type { Leadership } from '../store/store.js';
import { type StartedParts, streamGraceMs } from './started-parts.js';

export interface PeeringParts {
  readonly peerings: Peerings;
  readonly imported: ImportedServices;
  readonly peeringServer: PeeringServer;
  readonly peeringManager: PeeringManager;
  /** The dialer side of `POST /v1/peering/establish`. */
  readonly establish: (input: EstablishInput) => Promise<Peering>;
  /** The bound peering port. */
  readonly port: number;
  /** The peering address the leader publishes (this server's, were it to lead). */
  readonly leaderValue: string;
}

export interface PeeringDeps {
  /** Filled here: the election of the servers sharing the store, joined once the port is bound. */
  readonly leadership: { current: Leadership | undefined };
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly store: Store;
  readonly catalog: Catalog;
  readonly ca: CertificateAuthority;
  /** Every live server's peering address, the leader's first; empty: this server's alone. */
  readonly clusterPeeringAddresses?: () => readonly string[];
}

/**
 * Opens the peering records, serves the peering port, starts the replication streams and feeds
 * the isthmus_peering_* gauges.
 */
export async function startPeering(deps: PeeringDeps, parts: StartedParts): Promise<PeeringParts> {
  const { config, catalog, ca, metrics } = deps;
  const logger = deps.logger.child({ component: 'peering' });
  const { datacenter } = config;
  // The port is bound last, by `listen`; tokens, the only readers of the advertised address, are
  // generated through the HTTP API, which listens after it.
  let boundPort = config.peeringAddr.port;
  const wanGatewayAddresses = () => meshGatewayPeeringAddresses(catalog, datacenter, 'wan');
  const localGatewayAddresses = () => meshGatewayPeeringAddresses(catalog, datacenter, 'lan');
  const local: LocalPeeringInfo = {
    datacenter,
    partition: 'default',
    serverName: peeringServerName(ca.trustDomain, datacenter),
    rootPems: () => ca.roots().roots.map((r) => r.certPem),
    // A token names every server of the cluster (Consul's ServerAddresses), the leader first.
    serverAddresses: () => {
      const all = deps.clusterPeeringAddresses?.() ?? [];
      return all.length > 0 ? all : advertisedPeeringAddresses(config, boundPort);
    },
    meshGatewayAddresses: wanGatewayAddresses,
  };
  const peerings = parts.add('peerings', await Peerings.open(deps.store, { local, logger }), (p) =>
    p.close(),
  );
  const establish = (input: EstablishInput) =>
    establishPeering({ peerings, ca, datacenter, logger, localGatewayAddresses }, input);
  const imported = await ImportedServices.open(deps.store, { logger });
  const peeringServer = parts.add(
    'peering server',
    new PeeringServer({ peerings, ca, datacenter, logger }),
    (s) => s.shutdown(streamGraceMs),
  );
  const largest = new Map<string, number>();
  const replicationSent = (peer: string, messageBytes: readonly number[]) => {
    const labels = { peer_name: peer };
    metrics.peeringMessagesSent.inc(labels, messageBytes.length);
    metrics.peeringBytesSent.inc(
      labels,
      messageBytes.reduce((a, b) => a + b, 0),
    );
    const max = Math.max(largest.get(peer) ?? 0, ...messageBytes);
    largest.set(peer, max);
    metrics.peeringLargestMessage.set(labels, max);
  };
  boundPort = await peeringServer.listen(formatHostPort(config.peeringAddr));
  // The leader publishes its peering address: a peer's stream that lands elsewhere goes there.
  const leaderValue =
    advertisedPeeringAddresses(config, boundPort)[0] ??
    formatHostPort(config.peeringAddr, boundPort);
  const leadership = deps.store.campaign(leaderValue);
  deps.leadership.current = leadership;
  countLeadershipChanges(leadership, metrics);
  const peeringManager = parts.add(
    'peering streams',
    new PeeringManager({
      peerings,
      peeringServer,
      catalog,
      ca,
      imported,
      datacenter,
      logger,
      // Replicated to dialers: our gateways' WAN addresses when peering through them.
      serverAddresses: () => {
        const viaGateways = wanGatewayAddresses();
        return viaGateways.length > 0 ? viaGateways : local.serverAddresses();
      },
      localGatewayAddresses,
      heartbeatIntervalMs: config.peeringHeartbeatMs,
      heartbeatTimeoutMs: config.peeringHeartbeatTimeoutMs,
      onResponseSent: (peer, sent) => replicationSent(peer, sent.messageBytes),
      leadership,
    }),
    (m) => m.close(),
  );
  // The manager's deletion hook (telling the peer) is installed before deletions resume.
  await peeringManager.start();
  peerings.resumeDeletions();
  // The gauges are read at each scrape; the metrics registry exists before the peerings do.
  metrics.peeringRows = () => peeringRows(peerings, config.peeringHeartbeatTimeoutMs);
  return {
    peerings,
    imported,
    peeringServer,
    peeringManager,
    establish,
    port: boundPort,
    leaderValue,
  };
}

/** A generated token nobody used yet is not a broken peering: no series until it is established. */
function peeringRows(peerings: Peerings, heartbeatTimeoutMs: number) {
  const now = Date.now();
  return peerings
    .list()
    .filter((p) => p.state !== 'PENDING')
    .map((p) => ({
      peerName: p.name,
      healthy: isHealthy(p, now, heartbeatTimeoutMs),
      exportedServices: p.streamStatus.exportedServices.length,
      importedServices: p.streamStatus.importedServices.length,
      lastHeartbeatAgeSeconds: heartbeatAgeSeconds(p, now),
    }));
}

/** `--advertise-addr`, else the bound peering address unless it is a wildcard (not dialable). */
export function advertisedPeeringAddresses(config: ServerConfig, boundPort: number): string[] {
  if (config.advertiseAddr) return [formatHostPort(config.advertiseAddr)];
  const host = config.peeringAddr.host;
  if (host === '0.0.0.0' || host === '::') return [];
  return [formatHostPort(config.peeringAddr, boundPort)];
}

/**
 * isthmus_cluster_leader follows `leadership` at each scrape; isthmus_leadership_changes_total
 * counts each time this server became or stopped being the leader (a flapping leader shows here).
 */
function countLeadershipChanges(leadership: Leadership, metrics: Metrics): void {
  metrics.isLeader = () => leadership.isLeader();
  let led = false;
  const changed = () => {
    if (leadership.isLeader() === led) return;
    led = !led;
    metrics.leadershipChanges.inc({ change: led ? 'acquired' : 'lost' });
  };
  leadership.subscribe(changed);
  changed();
}
