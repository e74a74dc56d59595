/** An in-memory CatalogReader for unit tests and benchmarks of the snapshot layer. */
import type {
  CatalogEvent,
  CatalogReader,
  ConfigEntry,
  ConfigEntryKind,
  ServiceInstance,
  ServiceKind,
} from '../../src/catalog/types.js';

export type InstanceInput = Partial<ServiceInstance> & Pick<ServiceInstance, 'id' | 'name'>;

export class FakeCatalog implements CatalogReader {
  private readonly instances = new Map<string, ServiceInstance>();
  private readonly entries = new Map<string, ConfigEntry>();
  private readonly listeners = new Set<(e: CatalogEvent) => void>();
  private index = 1;

  constructor(readonly datacenter = 'dc1') {}

  upsert(input: InstanceInput): ServiceInstance {
    const previous = this.instances.get(input.id);
    const instance: ServiceInstance = {
      kind: 'typical',
      address: '127.0.0.1',
      port: 0,
      tags: [],
      meta: {},
      namespace: 'default',
      partition: 'default',
      datacenter: this.datacenter,
      taggedAddresses: {},
      checks: [],
      createIndex: previous?.createIndex ?? this.index,
      modifyIndex: this.index++,
      ...input,
    };
    this.instances.set(instance.id, instance);
    this.emit({ kind: 'instance-upserted', instance, previous });
    return instance;
  }

  remove(id: string): void {
    const instance = this.instances.get(id);
    if (!instance) return;
    this.instances.delete(id);
    this.emit({ kind: 'instance-removed', instance });
  }

  putEntry(entry: ConfigEntry): void {
    this.entries.set(`${entry.kind}/${entry.name}`, entry);
    this.emit({ kind: 'config-entry-changed', entryKind: entry.kind, name: entry.name });
  }

  instance(id: string): ServiceInstance | undefined {
    return this.instances.get(id);
  }
  instancesOf(name: string): readonly ServiceInstance[] {
    return this.allInstances().filter((i) => i.name === name);
  }
  sidecarsOf(name: string): readonly ServiceInstance[] {
    return this.allInstances().filter(
      (i) => i.kind === 'connect-proxy' && i.proxy?.destinationServiceName === name,
    );
  }
  instancesOfKind(kind: ServiceKind): readonly ServiceInstance[] {
    return this.allInstances().filter((i) => i.kind === kind);
  }
  allInstances(): readonly ServiceInstance[] {
    return [...this.instances.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  }
  configEntry<K extends ConfigEntryKind>(
    kind: K,
    name: string,
  ): Extract<ConfigEntry, { kind: K }> | undefined {
    return this.entries.get(`${kind}/${name}`) as Extract<ConfigEntry, { kind: K }> | undefined;
  }
  configEntries<K extends ConfigEntryKind>(kind: K): readonly Extract<ConfigEntry, { kind: K }>[] {
    return [...this.entries.values()].filter((e) => e.kind === kind) as Extract<
      ConfigEntry,
      { kind: K }
    >[];
  }
  subscribe(listener: (event: CatalogEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  private emit(e: CatalogEvent): void {
    for (const l of this.listeners) l(e);
  }
}
