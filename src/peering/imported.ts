import { healthStatuses } from '../catalog/checks.js';
import type { HealthStatus, ServiceInstance } from '../catalog/types.js';
import type { ExportedService } from '../gen/isthmus/peering/v1/peering.js';
import { silentLogger, type Logger } from '../log.js';
import { invalidInput } from '../problems.js';
import type { Store, StoreEvent } from '../store/index.js';
import { storedImports } from './records.js';

/**
 * Services imported from cluster peers, in the Store under the local name of the peering (they
 * survive a restart) with an in-memory copy for the catalog API, kept by the Store watch: the
 * server holding a peering's stream writes, every server of the cluster follows. Each service is replaced as a
 * whole by the latest payload (docs/architecture.md §6 "Importer": full-state reconcile per
 * service).
 */

const idOf = (peer: string, service: string) => `${peer}/${service}`;

/** What the catalog API shows of a peered instance beyond a local one. */
export interface PeeredFields {
  readonly peerName: string;
  readonly peerMeta?:
    | {
        readonly sni: readonly string[];
        readonly spiffeId: readonly string[];
        readonly protocol: string;
      }
    | undefined;
}

export type ImportedInstance = ServiceInstance & PeeredFields;

/** What changed among a peer's imports (the snapshot layer rebuilds the proxies that use them). */
export type ImportedEvent = {
  readonly kind: 'imported-changed';
  readonly peer: string;
  readonly service?: string | undefined;
};

export class ImportedServices {
  /** peer → service → instances */
  private readonly byPeer = new Map<string, Map<string, readonly ImportedInstance[]>>();
  /** peer → `serviceNames(peer)`, dropped when the peer's set of services changes. */
  private readonly sortedNames = new Map<string, readonly string[]>();
  private readonly listeners = new Set<(event: ImportedEvent) => void>();

  private readonly unwatch: () => void;

  private constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {
    this.unwatch = store.watch(storedImports.prefix, (event) => this.apply(event));
  }

  /**
   * Loads what was imported before a restart. A record that fails its schema is logged and
   * skipped: the peer sends the full state of every exported service again once its stream is up.
   */
  static async open(
    store: Store,
    opts: { readonly logger?: Logger } = {},
  ): Promise<ImportedServices> {
    const logger = opts.logger ?? silentLogger();
    const imported = new ImportedServices(store, logger);
    const onInvalid = (err: Error) =>
      logger.warn({ err }, 'invalid imported service record skipped');
    for (const { id, value } of await storedImports.list(store, { onInvalid })) {
      const [peer, service] = splitId(id);
      if (peer && service) imported.services(peer).set(service, value.instances);
    }
    return imported;
  }

  /** Instances of `name` imported from `peer` (empty when none). */
  instancesOf(peer: string, name: string, namespace = 'default'): readonly ImportedInstance[] {
    return (this.byPeer.get(peer)?.get(name) ?? []).filter((i) => i.namespace === namespace);
  }

  /** Every instance of `service` imported from `peer`, whatever its namespace. */
  heldOf(peer: string, service: string): readonly ImportedInstance[] {
    return this.byPeer.get(peer)?.get(service) ?? [];
  }

  /** Every instance imported from `peer`. */
  allOf(peer: string): readonly ImportedInstance[] {
    return [...(this.byPeer.get(peer)?.values() ?? [])].flat();
  }

  /**
   * Names of the services imported from `peer`, sorted: kept until a service is added or removed
   * (a gateway's snapshot asks on every build that adds one).
   */
  serviceNames(peer: string): readonly string[] {
    let names = this.sortedNames.get(peer);
    if (!names) {
      names = [...(this.byPeer.get(peer)?.keys() ?? [])].sort();
      this.sortedNames.set(peer, names);
    }
    return names;
  }

  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: (event: ImportedEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Replaces what is imported of one service with exactly `instances`. This, `remove` and `retain`
   * are the replication stream's writes: they commit as the cluster leader only (who holds the
   * streams), so a server that lost its lease cannot undo what the new leader imported.
   */
  async replace(
    peer: string,
    service: string,
    instances: readonly ImportedInstance[],
  ): Promise<void> {
    // The store keeps a JSON copy of what it is given (undefined fields dropped).
    await this.store.txn(
      async (tx) => {
        storedImports.put(tx, idOf(peer, service), { instances });
      },
      { asLeader: true },
    );
  }

  async remove(peer: string, service: string): Promise<void> {
    await this.store.txn(
      async (tx) => {
        storedImports.delete(tx, idOf(peer, service));
      },
      { asLeader: true },
    );
  }

  /**
   * Replaces (instances) or removes (`undefined`) several services of `peer` in one Store
   * transaction: the importer writes a burst of replicated services as one commit (issue 14).
   */
  async write(
    peer: string,
    services: ReadonlyMap<string, readonly ImportedInstance[] | undefined>,
  ): Promise<void> {
    if (services.size === 0) return;
    await this.store.txn(async (tx) => {
      for (const [service, instances] of services) {
        if (instances) storedImports.put(tx, idOf(peer, service), { instances });
        else storedImports.delete(tx, idOf(peer, service));
      }
    });
  }

  /** Whether anything of `service` is imported from `peer`. */
  has(peer: string, service: string): boolean {
    return this.byPeer.get(peer)?.has(service) ?? false;
  }

  /** Stops following the store. */
  close(): void {
    this.unwatch();
  }

  /** Removes every service of `peer` not in `keep` (the peer's latest exported-services list). */
  async retain(peer: string, keep: ReadonlySet<string>): Promise<void> {
    const gone = [...(this.byPeer.get(peer)?.keys() ?? [])].filter((name) => !keep.has(name));
    await this.write(peer, new Map(gone.map((name) => [name, undefined])));
  }

  /** Everything imported from `peer` (the peering was deleted or terminated). */
  async dropPeer(peer: string): Promise<void> {
    const keys = (await this.store.list(storedImports.key(`${peer}/`))).map((kv) => kv.key);
    if (keys.length > 0)
      await this.store.txn(async (tx) => {
        for (const k of keys) tx.delete(k);
      });
  }

  /** A committed import change from any server (the watch; this server's own included). */
  private apply(event: StoreEvent): void {
    const [peer, service] = splitId(storedImports.idOf(event.key));
    if (!peer || !service) return;
    if (event.kind === 'delete') {
      const services = this.byPeer.get(peer);
      if (!services?.delete(service)) return;
      if (services.size === 0) this.byPeer.delete(peer);
      this.sortedNames.delete(peer);
    } else {
      try {
        const instances = storedImports.decodeEvent(event).instances;
        const services = this.services(peer);
        if (!services.has(service)) this.sortedNames.delete(peer);
        services.set(service, instances);
      } catch (err) {
        this.logger.warn({ err }, 'invalid imported service record skipped');
        return;
      }
    }
    this.emit({ kind: 'imported-changed', peer, service });
  }

  private emit(event: ImportedEvent): void {
    for (const l of this.listeners) l(event);
  }

  private services(peer: string): Map<string, readonly ImportedInstance[]> {
    let m = this.byPeer.get(peer);
    if (!m) this.byPeer.set(peer, (m = new Map()));
    return m;
  }
}

function splitId(rest: string): [string | undefined, string | undefined] {
  const slash = rest.indexOf('/');
  return slash < 0 ? [undefined, undefined] : [rest.slice(0, slash), rest.slice(slash + 1)];
}

/**
 * The catalog form of a replicated service: one instance per replicated instance, its flattened
 * health as a single check, and `PeerMeta` on synthetic sidecars. Throws on a payload the
 * importer cannot use (the stream NACKs it).
 */
export function importedInstancesOf(
  peer: string,
  datacenter: string,
  service: ExportedService,
): ImportedInstance[] {
  return service.instances.map((i, index) => {
    if (!i.id || !i.name)
      throw invalidInput([{ field: `instances[${index}]`, problem: 'id and name are required' }]);
    const health = (healthStatuses as readonly string[]).includes(i.health)
      ? (i.health as HealthStatus)
      : 'passing';
    const kind = i.kind === 'connect-proxy' ? 'connect-proxy' : 'typical';
    const instance: ImportedInstance = {
      id: i.id,
      name: i.name,
      kind,
      address: i.address,
      port: i.port,
      tags: [],
      meta: { ...i.meta },
      namespace: service.service?.namespace || 'default',
      partition: 'default',
      datacenter,
      taggedAddresses: {},
      proxy:
        kind === 'connect-proxy'
          ? {
              destinationServiceName: i.destinationServiceName,
              destinationServiceId: '',
              localServiceAddress: '',
              localServicePort: 0,
              upstreams: [],
              meshGateway: { mode: '' },
            }
          : undefined,
      checks: [
        {
          checkId: `peer-health:${i.id}`,
          name: 'Peered service health',
          serviceId: i.id,
          status: health,
          output: '',
        },
      ],
      createIndex: 0,
      modifyIndex: 0,
      peerName: peer,
      peerMeta: i.peerMeta
        ? {
            sni: [...i.peerMeta.sni],
            spiffeId: [...i.peerMeta.spiffeId],
            protocol: i.peerMeta.protocol,
          }
        : undefined,
    };
    return instance;
  });
}
