import type { ConfigEntry, ConfigEntryKind, ServiceInstance, ServiceKind } from './types.js';

/**
 * An instance as persisted: `sidecarFor` marks a sidecar registered through its service's
 * `Connect`.
 */
export interface StoredInstance {
  readonly instance: ServiceInstance;
  readonly sidecarFor?: string | undefined;
}

export interface ConfigRecord<E extends ConfigEntry = ConfigEntry> {
  readonly entry: E;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

const byId = (a: ServiceInstance, b: ServiceInstance): number =>
  a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
const nameKey = (name: string, namespace = 'default', partition = 'default'): string =>
  `${partition}/${namespace}/${name}`;

/** Instances grouped by a key, each group's sorted array built once per change. */
class Groups {
  private readonly groups = new Map<string, Map<string, ServiceInstance>>();
  private readonly sorted = new Map<string, readonly ServiceInstance[]>();

  set(key: string, instance: ServiceInstance): void {
    let group = this.groups.get(key);
    if (!group) this.groups.set(key, (group = new Map()));
    group.set(instance.id, instance);
    this.sorted.delete(key);
  }

  remove(key: string, id: string): void {
    const group = this.groups.get(key);
    if (!group?.delete(id)) return;
    if (group.size === 0) this.groups.delete(key);
    this.sorted.delete(key);
  }

  /** The group's instances in no particular order, without sorting them. */
  unsorted(key: string): Iterable<ServiceInstance> {
    return this.groups.get(key)?.values() ?? [];
  }

  get(key: string): readonly ServiceInstance[] {
    let list = this.sorted.get(key);
    if (!list) {
      list = Object.freeze([...(this.groups.get(key)?.values() ?? [])].sort(byId));
      this.sorted.set(key, list);
    }
    return list;
  }
}

/**
 * The catalog's in-memory view of what is committed in the Store, with the lookups the snapshot
 * layer makes on every rebuild (by name, by destination, by kind) answered without scanning.
 */
export class CatalogIndex {
  private readonly instances = new Map<string, StoredInstance>();
  private readonly checkOwners = new Map<string, string>();
  private readonly byName = new Groups();
  private readonly byDestination = new Groups();
  private readonly byKind = new Groups();
  /** Sidecars by the address their public listener binds. */
  private readonly sidecarsByAddress = new Groups();
  private readonly all = new Groups();
  private readonly configs = new Map<string, ConfigRecord>();

  get(id: string): StoredInstance | undefined {
    return this.instances.get(id);
  }

  /** The instance owning a check ID. */
  checkOwner(checkId: string): ServiceInstance | undefined {
    const id = this.checkOwners.get(checkId);
    return id === undefined ? undefined : this.instances.get(id)?.instance;
  }

  /** The sidecar registered through `Connect` of the service `id`. */
  connectSidecarOf(id: string): ServiceInstance | undefined {
    const sidecar = this.instances.get(`${id}-sidecar-proxy`);
    return sidecar?.sidecarFor === id ? sidecar.instance : undefined;
  }

  put(stored: StoredInstance): void {
    this.remove(stored.instance.id);
    const { instance } = stored;
    this.instances.set(instance.id, stored);
    for (const check of instance.checks) this.checkOwners.set(check.checkId, instance.id);
    this.byName.set(nameKey(instance.name, instance.namespace, instance.partition), instance);
    if (instance.kind === 'connect-proxy' && instance.proxy) {
      this.byDestination.set(
        nameKey(instance.proxy.destinationServiceName, instance.namespace, instance.partition),
        instance,
      );
    }
    this.byKind.set(instance.kind, instance);
    if (instance.kind === 'connect-proxy') this.sidecarsByAddress.set(instance.address, instance);
    this.all.set('', instance);
  }

  remove(id: string): StoredInstance | undefined {
    const stored = this.instances.get(id);
    if (!stored) return undefined;
    const { instance } = stored;
    this.instances.delete(id);
    for (const check of instance.checks) this.checkOwners.delete(check.checkId);
    this.byName.remove(nameKey(instance.name, instance.namespace, instance.partition), id);
    if (instance.proxy)
      this.byDestination.remove(
        nameKey(instance.proxy.destinationServiceName, instance.namespace, instance.partition),
        id,
      );
    this.byKind.remove(instance.kind, id);
    if (instance.kind === 'connect-proxy') this.sidecarsByAddress.remove(instance.address, id);
    this.all.remove('', id);
    return stored;
  }

  instancesOf(name: string, namespace?: string, partition?: string): readonly ServiceInstance[] {
    return this.byName.get(nameKey(name, namespace, partition));
  }

  sidecarsOf(name: string, namespace?: string, partition?: string): readonly ServiceInstance[] {
    return this.byDestination.get(nameKey(name, namespace, partition));
  }

  instancesOfKind(kind: ServiceKind): readonly ServiceInstance[] {
    return this.byKind.get(kind);
  }

  /**
   * The ports sidecars on one address already have: Consul allocates its sidecar port range per
   * agent, that is per host, so sidecars on different addresses may share a port.
   */
  sidecarPortsAt(address: string): Set<number> {
    const ports = new Set<number>();
    for (const sidecar of this.sidecarsByAddress.unsorted(address)) ports.add(sidecar.port);
    return ports;
  }

  allInstances(): readonly ServiceInstance[] {
    return this.all.get('');
  }

  putConfig(record: ConfigRecord): void {
    this.configs.set(`${record.entry.kind}/${record.entry.name}`, record);
  }

  removeConfig(kind: ConfigEntryKind, name: string): ConfigRecord | undefined {
    const record = this.configs.get(`${kind}/${name}`);
    this.configs.delete(`${kind}/${name}`);
    return record;
  }

  config(kind: ConfigEntryKind, name: string): ConfigRecord | undefined {
    return this.configs.get(`${kind}/${name}`);
  }

  /** Every entry of every kind. */
  allConfig(): ConfigRecord[] {
    return [...this.configs.values()];
  }

  /** Every entry of a kind, sorted by name. */
  configsOf(kind: ConfigEntryKind): ConfigRecord[] {
    return [...this.configs.values()]
      .filter((r) => r.entry.kind === kind)
      .sort((a, b) => (a.entry.name < b.entry.name ? -1 : a.entry.name > b.entry.name ? 1 : 0));
  }
}
