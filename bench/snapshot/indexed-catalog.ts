/**
 * A CatalogReader that answers the snapshot builders' lookups from the server's own CatalogIndex
 * (per-key groups, each group's array sorted by id once per change), over a FakeCatalog that holds
 * the data and emits the change events.
 *
 * Why: FakeCatalog (test/helpers) answers `sidecarsOf` and `instancesOfKind` by sorting every
 * instance on every call. A gateway build asks once per service, so with 1,000 services × 10
 * instances the fake alone costs seconds per build, which says nothing about the snapshot layer.
 * `--catalog fake` runs the benchmark on the bare FakeCatalog anyway.
 */
import { CatalogIndex } from '../../src/catalog/catalog-index.js';
import type {
  CatalogEvent,
  CatalogReader,
  ServiceInstance,
  ServiceKind,
} from '../../src/catalog/types.js';
import type { FakeCatalog } from '../../test/helpers/fake-catalog.js';

export class IndexedCatalog implements CatalogReader {
  private readonly index = new CatalogIndex();

  constructor(private readonly data: FakeCatalog) {
    for (const instance of data.allInstances()) this.index.put({ instance });
    data.subscribe((e) => this.apply(e));
  }

  private apply(e: CatalogEvent): void {
    if (e.kind === 'config-entry-changed') return;
    // put replaces the instance's previous version.
    if (e.kind === 'instance-removed') this.index.remove(e.instance.id);
    else this.index.put({ instance: e.instance });
  }

  instance(id: string): ServiceInstance | undefined {
    return this.data.instance(id);
  }
  instancesOf(name: string, namespace?: string, partition?: string): readonly ServiceInstance[] {
    return this.index.instancesOf(name, namespace, partition);
  }
  sidecarsOf(name: string, namespace?: string, partition?: string): readonly ServiceInstance[] {
    return this.index.sidecarsOf(name, namespace, partition);
  }
  instancesOfKind(kind: ServiceKind): readonly ServiceInstance[] {
    return this.index.instancesOfKind(kind);
  }
  allInstances(): readonly ServiceInstance[] {
    return this.index.allInstances();
  }
  configEntry: CatalogReader['configEntry'] = (kind, name) => this.data.configEntry(kind, name);
  configEntries: CatalogReader['configEntries'] = (kind) => this.data.configEntries(kind);
  subscribe(listener: (event: CatalogEvent) => void): () => void {
    return this.data.subscribe(listener);
  }
}
