/**
 * A CatalogReader that answers the snapshot builders' lookups from indexes, as the server's
 * catalog does (per-key groups, each group's array sorted by id once per change), over a
 * FakeCatalog that holds the data and emits the change events.
 *
 * Why: FakeCatalog (test/helpers) answers `sidecarsOf` and `instancesOfKind` by sorting every
 * instance on every call. A gateway build asks once per service, so with 1,000 services × 10
 * instances the fake alone costs seconds per build, which says nothing about the snapshot layer.
 * `--catalog fake` runs the benchmark on the bare FakeCatalog anyway.
 */
import type { CatalogEvent, CatalogReader, ServiceInstance, ServiceKind } from '../../src/catalog/types.js';
import type { FakeCatalog } from '../../test/helpers/fake-catalog.js';

const byId = (a: ServiceInstance, b: ServiceInstance) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const nameKey = (name: string, namespace = 'default', partition = 'default') => `${partition}/${namespace}/${name}`;

/** Instances grouped by a key; a group's sorted array is built on the first read after a change. */
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
    if (this.groups.get(key)?.delete(id)) this.sorted.delete(key);
  }

  get(key: string): readonly ServiceInstance[] {
    let list = this.sorted.get(key);
    if (!list) this.sorted.set(key, (list = [...(this.groups.get(key)?.values() ?? [])].sort(byId)));
    return list;
  }
}

export class IndexedCatalog implements CatalogReader {
  private readonly byName = new Groups();
  private readonly byDestination = new Groups();
  private readonly byKind = new Groups();
  private readonly all = new Groups();

  constructor(private readonly data: FakeCatalog) {
    for (const i of data.allInstances()) this.add(i);
    data.subscribe((e) => this.apply(e));
  }

  private apply(e: CatalogEvent): void {
    if (e.kind === 'config-entry-changed') return;
    if (e.kind === 'instance-upserted' && e.previous) this.drop(e.previous);
    if (e.kind === 'instance-removed') this.drop(e.instance);
    else this.add(e.instance);
  }

  private add(i: ServiceInstance): void {
    this.byName.set(nameKey(i.name, i.namespace, i.partition), i);
    if (i.kind === 'connect-proxy' && i.proxy) this.byDestination.set(nameKey(i.proxy.destinationServiceName, i.namespace, i.partition), i);
    this.byKind.set(i.kind, i);
    this.all.set('', i);
  }

  private drop(i: ServiceInstance): void {
    this.byName.remove(nameKey(i.name, i.namespace, i.partition), i.id);
    if (i.proxy) this.byDestination.remove(nameKey(i.proxy.destinationServiceName, i.namespace, i.partition), i.id);
    this.byKind.remove(i.kind, i.id);
    this.all.remove('', i.id);
  }

  instance(id: string): ServiceInstance | undefined {
    return this.data.instance(id);
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
  allInstances(): readonly ServiceInstance[] {
    return this.all.get('');
  }
  configEntry: CatalogReader['configEntry'] = (kind, name) => this.data.configEntry(kind, name);
  configEntries: CatalogReader['configEntries'] = (kind) => this.data.configEntries(kind);
  subscribe(listener: (event: CatalogEvent) => void): () => void {
    return this.data.subscribe(listener);
  }
}
