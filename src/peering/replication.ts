import type { CertificateAuthority } from '../ca/index.js';
import type { CatalogEvent, CatalogReader } from '../catalog/types.js';
import type {
  ExportedService,
  ExportedServiceList,
  ServerAddresses,
  TrustBundle,
} from '../gen/isthmus/peering/v1/peering.js';
import { IsthmusError } from '../errors.js';
import { invalidInput } from '../problems.js';
import {
  exportedNamesFor,
  exportedNamesMayChange,
  exportedServiceFor,
  servicesTouchedBy,
} from './exports.js';
import { type ImportedInstance, type ImportedServices, importedInstancesOf } from './imported.js';
import type { Peerings } from './peerings.js';
import { ServiceVersions } from './service-versions.js';
import { ResourceUrl } from './stream/resources.js';
import type { ResourceChange, ResourceSink, ResourceSource, SinkChange } from './stream/types.js';
import type { RejectedImport } from './types.js';
import {
  importLimits,
  validateExportedService,
  validateRemovedIds,
  validateExportedServiceList,
  validateServerAddresses,
  validateTrustBundle,
} from './validate-import.js';

/** The one-resource IDs (a list, the addresses); a trust bundle's ID is its trust domain. */
const exportedListId = 'exported-services';
const serverAddressesId = 'server-addresses';

export interface ExportSourceDeps {
  readonly catalog: CatalogReader;
  readonly ca: Pick<CertificateAuthority, 'trustDomain' | 'roots' | 'subscribe'>;
  readonly datacenter: string;
  /** Our name for the peering (the consumer name in `exported-services`). */
  readonly peeringName: string;
  /** Acceptor: the advertised peering addresses (the dialer imports them). */
  serverAddresses(): readonly string[];
  /** The names exported right now, for streamStatus.exportedServices. */
  onExported?(names: readonly string[]): void;
}

type Emit = (change: ResourceChange) => void;

/**
 * The exporter of one peering: answers each subscription with the current state and then every
 * change, recomputed from the catalog on each catalog event and sent only when it differs from
 * what was last sent (a service no longer exported is deleted).
 */
export class ExportSource implements ResourceSource {
  /** Sends a service's full state again after the peer refused a patch (while subscribed). */
  private resendService: ((name: string) => void) | undefined;

  constructor(private readonly deps: ExportSourceDeps) {}

  subscribe(resourceUrl: ResourceUrl, emit: Emit): () => void {
    switch (resourceUrl) {
      case ResourceUrl.trustBundle:
        return this.trustBundle(emit);
      case ResourceUrl.serverAddresses:
        return this.serverAddresses(emit);
      case ResourceUrl.exportedServiceList:
        return this.onCatalog(() => this.listChange(), emit);
      case ResourceUrl.exportedService:
        return this.services(emit);
    }
  }

  private trustBundle(emit: Emit): () => void {
    const { ca } = this.deps;
    const send = () => {
      const bundle: TrustBundle = {
        trustDomain: ca.trustDomain,
        rootPems: ca.roots().roots.map((r) => r.certPem),
      };
      emit({ resourceId: ca.trustDomain, operation: 'upsert', resource: bundle });
    };
    send();
    return ca.subscribe((event) => {
      if (event.kind === 'roots-changed') send();
    });
  }

  private serverAddresses(emit: Emit): () => void {
    const addresses = [...this.deps.serverAddresses()];
    if (addresses.length > 0)
      emit({
        resourceId: serverAddressesId,
        operation: 'upsert',
        resource: { addresses } satisfies ServerAddresses,
      });
    return () => undefined;
  }

  private listChange(): ResourceChange {
    const names = exportedNamesFor(this.deps.catalog, this.deps.peeringName);
    this.deps.onExported?.(names);
    const list: ExportedServiceList = {
      services: names.map((name) => ({ name, namespace: 'default', partition: 'default' })),
    };
    return { resourceId: exportedListId, operation: 'upsert', resource: list };
  }

  /** Emits the list now and after each catalog change that may change it, when it differs. */
  private onCatalog(compute: () => ResourceChange, emit: Emit): () => void {
    let last = '';
    let names = new Set<string>();
    const send = (event?: CatalogEvent) => {
      if (event && !exportedNamesMayChange(this.deps.catalog, event, names)) return;
      const change = compute();
      const key = JSON.stringify(change);
      if (key !== last) emit(change);
      last = key;
      names = new Set((change.resource as ExportedServiceList).services.map((s) => s.name));
    };
    send();
    return this.deps.catalog.subscribe(send);
  }

  /**
   * One upsert per exported service, then on each catalog event only the services it touches
   * (issue 14: the cost of a change follows the change): a service the peer holds gets a patch of
   * the instances that changed when that is less than half of it, else its full state again.
   */
  private services(emit: Emit): () => void {
    const { catalog, peeringName } = this.deps;
    const ctx = {
      catalog,
      trustDomain: this.deps.ca.trustDomain,
      datacenter: this.deps.datacenter,
    };
    const sent = new ServiceVersions((name) => exportedServiceFor(ctx, peeringName, name), emit);
    let exported = new Set<string>();
    const sync = (event?: CatalogEvent) => {
      const listChanged = !event || exportedNamesMayChange(catalog, event, exported);
      if (listChanged) exported = new Set(exportedNamesFor(catalog, peeringName));
      const touched = event ? servicesTouchedBy(event) : 'all';
      for (const name of touched === 'all' ? exported : touched)
        if (exported.has(name)) sent.send(name);
      if (listChanged) for (const name of sent.names()) if (!exported.has(name)) sent.delete(name);
    };
    sync();
    this.resendService = (name) => sent.rejected(name);
    const unsubscribe = catalog.subscribe(sync);
    return () => {
      this.resendService = undefined;
      unsubscribe();
    };
  }

  rejected(resourceUrl: ResourceUrl, resourceId: string): void {
    if (resourceUrl === ResourceUrl.exportedService) this.resendService?.(resourceId);
  }
}

export interface ImportSinkDeps {
  readonly peerings: Pick<Peerings, 'read' | 'list' | 'updatePeer' | 'setStreamStatus'>;
  readonly imported: ImportedServices;
  /** Our name for the peering: imported data is kept under it. */
  readonly peeringName: string;
  /** This cluster's trust domain: a peer may not claim it. */
  readonly ownTrustDomain: string;
}

/** A batch of services being applied: its outcome per name (`undefined`: removed). */
interface ServiceBatch {
  readonly held: Map<string, readonly ImportedInstance[] | undefined>;
  readonly versions: Map<string, string | undefined>;
}

/** Rejections kept on the peering (one per resource; a peer can send any number of bad ones). */
const maxRejectedKept = 16;

const rejectedKind: Record<ResourceUrl, RejectedImport['resource']> = {
  [ResourceUrl.trustBundle]: 'trust-bundle',
  [ResourceUrl.serverAddresses]: 'server-addresses',
  [ResourceUrl.exportedServiceList]: 'exported-services',
  [ResourceUrl.exportedService]: 'service',
};

/**
 * The importer of one peering: the peer's trust bundle and server addresses go into the peering
 * record (the dialer dials with them), its services into ImportedServices, each replaced by
 * exactly the latest payload and removed once it leaves the peer's exported list. Everything is
 * validated first (validate-import.ts): a refused resource changes nothing but the peering's
 * LastError and `rejectedImports`, and is NACKed with INVALID_ARGUMENT (the peer's input error).
 */
export class ImportSink implements ResourceSink {
  /** The exporter's version of each service held, which its next patch must name as its base. */
  private readonly versions = new Map<string, string>();
  /** Whether StreamStatus.importedServices was compared with what is held since this started. */
  private countsChecked = false;

  constructor(private readonly deps: ImportSinkDeps) {}

  async apply(resourceUrl: ResourceUrl, change: ResourceChange): Promise<void> {
    const [error] = await this.applyBatch([{ resourceUrl, change }]);
    if (error) throw error;
  }

  /**
   * Applies a burst of changes in order, as if one at a time: consecutive services are checked
   * against what the batch already holds and written in one Store transaction, with one
   * StreamStatus update (issue 14: a peer's 5,000 services must not cost 5,000 commits, nor a
   * rewrite of the imported-services list each). Anything else is applied on its own.
   */
  async applyBatch(changes: readonly SinkChange[]): Promise<(IsthmusError | undefined)[]> {
    const results: (IsthmusError | undefined)[] = [];
    for (let i = 0; i < changes.length; ) {
      let end = i;
      while (changes[end]?.resourceUrl === ResourceUrl.exportedService) end++;
      if (end > i) {
        results.push(...(await this.services(changes.slice(i, end).map((c) => c.change))));
        i = end;
      } else {
        const { resourceUrl, change } = changes[i++]!;
        results.push(await this.applyOne(resourceUrl, change));
      }
    }
    return results;
  }

  private async applyOne(
    resourceUrl: ResourceUrl,
    change: ResourceChange,
  ): Promise<IsthmusError | undefined> {
    try {
      await this.applyValid(resourceUrl, change);
    } catch (err) {
      const e = IsthmusError.from(err);
      if (e.code === 'invalid_argument') await this.recordRejected(resourceUrl, change, e.message);
      return e;
    }
    await this.clearRejected(resourceUrl, [change.resourceId]);
    return undefined;
  }

  private applyValid(resourceUrl: ResourceUrl, change: ResourceChange): Promise<void> {
    switch (resourceUrl) {
      case ResourceUrl.trustBundle:
        return this.trustBundle(change);
      case ResourceUrl.serverAddresses:
        return this.serverAddresses(change);
      case ResourceUrl.exportedServiceList:
        return this.exportedList(change);
      case ResourceUrl.exportedService:
        return this.applyServiceAlone(change);
    }
  }

  private async applyServiceAlone(change: ResourceChange): Promise<void> {
    const [error] = await this.services([change]);
    if (error) throw error;
  }

  private async trustBundle(change: ResourceChange): Promise<void> {
    if (change.operation === 'delete') return; // a peer always has roots: keep the last ones
    const bundle = change.resource as TrustBundle;
    const { peerings, peeringName, ownTrustDomain } = this.deps;
    const problems = validateTrustBundle(bundle, {
      ownTrustDomain,
      peerings: peerings.list(),
      peeringName,
      resourceId: change.resourceId,
      pinned: peerings.read(peeringName)?.peerTrustDomain ?? '',
    });
    if (problems.length > 0) throw invalidInput(problems);
    await peerings.updatePeer(peeringName, {
      peerCaPems: [...bundle.rootPems],
      peerTrustDomain: bundle.trustDomain,
    });
  }

  private async serverAddresses(change: ResourceChange): Promise<void> {
    const resource: ServerAddresses =
      change.operation === 'upsert' ? (change.resource as ServerAddresses) : { addresses: [] };
    // An acceptor with nothing dialable to advertise: keep dialing the token's addresses.
    if (resource.addresses.length === 0) return;
    // The operator's addresses from the token win over what the acceptor reports (Consul's rule).
    if (this.deps.peerings.read(this.deps.peeringName)?.manualServerAddresses) return;
    const problems = validateServerAddresses(resource);
    if (problems.length > 0) throw invalidInput(problems);
    await this.deps.peerings.updatePeer(this.deps.peeringName, {
      peerServerAddresses: [...resource.addresses],
    });
  }

  private async exportedList(change: ResourceChange): Promise<void> {
    const list: ExportedServiceList =
      change.operation === 'upsert' ? (change.resource as ExportedServiceList) : { services: [] };
    const problems = validateExportedServiceList(list);
    if (problems.length > 0) throw invalidInput(problems);
    await this.deps.imported.retain(
      this.deps.peeringName,
      new Set(list.services.map((s) => s.name)),
    );
    await this.recordCounts();
  }

  /**
   * Services in arrival order: each is checked against the committed state plus the batch's
   * earlier ones (a patch applies to the version an earlier one in the batch left), the accepted
   * ones are written in one transaction, and only then do their versions count. A refused one is
   * NACKed alone; a failed write NACKs every accepted one with its error.
   */
  private async services(
    changes: readonly ResourceChange[],
  ): Promise<(IsthmusError | undefined)[]> {
    const batch: ServiceBatch = { held: new Map(), versions: new Map() };
    const results = changes.map((change) => {
      try {
        this.planService(change, batch);
        return undefined;
      } catch (err) {
        return IsthmusError.from(err);
      }
    });
    const { imported, peeringName } = this.deps;
    const namesChanged = [...batch.held].some(
      ([name, instances]) => imported.has(peeringName, name) !== (instances !== undefined),
    );
    try {
      await imported.write(peeringName, batch.held);
    } catch (err) {
      const e = IsthmusError.from(err);
      return results.map((r) => r ?? e);
    }
    for (const [name, version] of batch.versions)
      if (version) this.versions.set(name, version);
      else this.versions.delete(name);
    if (namesChanged || !this.countsChecked) await this.recordCounts();
    // What StreamStatus.rejectedImports says of a service is its last accepted or refused change.
    const last = new Map<string, { change: ResourceChange; error: IsthmusError | undefined }>();
    for (const [i, error] of results.entries())
      if (!error || error.code === 'invalid_argument')
        last.set(changes[i]!.resourceId, { change: changes[i]!, error });
    for (const { change, error } of last.values())
      if (error) await this.recordRejected(ResourceUrl.exportedService, change, error.message);
    const accepted = [...last].filter(([, l]) => !l.error).map(([id]) => id);
    await this.clearRejected(ResourceUrl.exportedService, accepted);
    return results;
  }

  /** Checks one service change and puts its outcome in `batch` (throws the NACK's error). */
  private planService(change: ResourceChange, batch: ServiceBatch): void {
    const { peeringName, peerings } = this.deps;
    const name = change.resourceId;
    if (change.operation === 'delete') {
      batch.held.set(name, undefined);
      batch.versions.set(name, undefined);
      return;
    }
    const service = change.resource as ExportedService;
    const peering = peerings.read(peeringName);
    const datacenter = peering?.remote.datacenter ?? '';
    if (change.operation === 'patch') this.checkBase(name, service, batch);
    const problems = validateExportedService(name, service, peering?.peerTrustDomain ?? '');
    if (change.operation === 'patch') problems.push(...validateRemovedIds(service));
    if (problems.length > 0) throw invalidInput(problems);
    const instances = importedInstancesOf(peeringName, datacenter, service);
    batch.held.set(
      name,
      change.operation === 'patch' ? this.patched(name, instances, service, batch) : instances,
    );
    batch.versions.set(name, service.version || undefined);
  }

  /** A patch applies only to the version it was made against (docs/architecture.md §6). */
  private checkBase(name: string, patch: ExportedService, batch: ServiceBatch): void {
    const held = batch.versions.has(name) ? batch.versions.get(name) : this.versions.get(name);
    const base = patch.patch?.baseVersion ?? '';
    if (!base || held !== base)
      throw new IsthmusError(
        'failed_precondition',
        `patch of service ${name} applies to version ${base || '(none)'}, this side holds ${held ?? 'none'}: send the full state`,
        'patch.base_version',
      );
  }

  /** The held instances of `name` with the patch's removed and upserted ones replaced. */
  private patched(
    name: string,
    upserted: readonly ImportedInstance[],
    patch: ExportedService,
    batch: ServiceBatch,
  ): ImportedInstance[] {
    const removed = patch.patch?.removedInstanceIds ?? [];
    const gone = new Set([...removed, ...upserted.map((i) => i.id)]);
    const held = batch.held.has(name)
      ? (batch.held.get(name) ?? [])
      : this.deps.imported.heldOf(this.deps.peeringName, name);
    const result = [...held.filter((i) => !gone.has(i.id)), ...upserted];
    if (result.length > importLimits.instances)
      throw invalidInput([
        {
          field: 'instances',
          problem: `the patched service has more than ${importLimits.instances} instances`,
        },
      ]);
    return result;
  }

  /**
   * Sets StreamStatus.importedServices to what is held. Called when the set of names may have
   * changed (and once per stream, to correct a list a crash left behind), never per service.
   */
  private async recordCounts(): Promise<void> {
    this.countsChecked = true;
    const { imported, peeringName, peerings } = this.deps;
    const names = imported.serviceNames(peeringName);
    const current = peerings.read(peeringName)?.streamStatus.importedServices ?? [];
    if (current.join('\n') !== names.join('\n'))
      await peerings.setStreamStatus(peeringName, { importedServices: names });
  }

  private async recordRejected(url: ResourceUrl, change: ResourceChange, reason: string) {
    const resource = rejectedKind[url];
    const what = resource === 'service' ? `service ${change.resourceId}` : resource;
    const entry: RejectedImport = { resource, resourceId: change.resourceId.slice(0, 256), reason };
    const others = this.rejectedOtherThan(resource, entry.resourceId);
    await this.deps.peerings
      .setStreamStatus(this.deps.peeringName, {
        lastError: `rejected the peer's ${what}: ${reason}`,
        rejectedImports: [...others, entry].slice(-maxRejectedKept),
      })
      .catch(() => undefined); // the peering is gone: nothing to record it on
  }

  /**
   * An accepted version of a resource resolves its rejection; an accepted trust bundle resolves
   * every refused one (a peer has one bundle, whatever trust domain a refused one named).
   */
  private async clearRejected(url: ResourceUrl, resourceIds: readonly string[]): Promise<void> {
    const { peerings, peeringName } = this.deps;
    const rejected = peerings.read(peeringName)?.streamStatus.rejectedImports ?? [];
    if (rejected.length === 0 || resourceIds.length === 0) return;
    const resource = rejectedKind[url];
    const ids = new Set(resourceIds);
    const others = rejected.filter(
      (r) => r.resource !== resource || (resource !== 'trust-bundle' && !ids.has(r.resourceId)),
    );
    if (others.length === rejected.length) return;
    await peerings.setStreamStatus(peeringName, {
      rejectedImports: others.length > 0 ? others : undefined,
    });
  }

  private rejectedOtherThan(resource: RejectedImport['resource'], id: string): RejectedImport[] {
    const rejected = this.deps.peerings.read(this.deps.peeringName)?.streamStatus.rejectedImports;
    return (rejected ?? []).filter((r) => r.resource !== resource || r.resourceId !== id);
  }
}

export { validateTrustBundle } from './validate-import.js';
