import { IsthmusError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store, StoreTxn } from '../store/store.js';
import type {
  CatalogEvent,
  CatalogReader,
  ConfigEntry,
  ConfigEntryKind,
  HealthStatus,
  ServiceInstance,
  ServiceKind,
} from './types.js';
import { CatalogIndex, type ConfigRecord } from './catalog-index.js';
import { type Clock, TtlTimers, systemClock } from './checks.js';
import { parseConfigEntry, parseConfigKind } from './config-entries.js';
import { checkEntryDelete, checkEntryWrite } from './entry-graph.js';
import { invalidInput } from '../problems.js';
import {
  type InstanceChanges,
  type PlanContext,
  planCheckUpdate,
  planDeregistration,
  planExpiry,
  planRegistration,
} from './instance-changes.js';
import { storedConfigEntries, storedInstances } from './records.js';
import { parseRegistration } from './registration.js';

export type { ConfigRecord, StoredInstance } from './catalog-index.js';

/** How long a TTL expiry the store refused (a full disk) waits before it is tried again. */
const expiryRetryMs = 1_000;

export interface CatalogOptions {
  /** This server's datacenter (the default `Datacenter` of registrations). */
  readonly datacenter: string;
  readonly logger: Logger;
  readonly clock?: Clock;
  /**
   * WAN federation, a secondary (docs/architecture.md §6c): config entries are global, written in
   * this primary datacenter and replicated here (`replaceConfigEntries`); a local write is refused
   * naming it.
   */
  readonly configEntriesFrom?: string | undefined;
}

/**
 * Services, instances, health checks and config entries of this cluster. Writes are serialized:
 * each validates against the committed state, commits one Store transaction (a failed write
 * changes nothing), updates the in-memory index, then emits `CatalogEvent`s. Reads are synchronous
 * lookups over the index, for the snapshot layer.
 */
export class Catalog implements CatalogReader {
  private readonly index = new CatalogIndex();
  private readonly listeners = new Set<(event: CatalogEvent) => void>();
  private readonly timers: TtlTimers;
  private readonly clock: Clock;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly store: Store,
    private readonly opts: CatalogOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.timers = new TtlTimers(this.clock, (checkId) => void this.expire(checkId));
  }

  /**
   * Loads every instance and config entry, and re-arms TTL timers (overdue ones fire at once). A
   * record that fails its schema fails the open with a StoredRecordError naming key and field:
   * serving without it would drop a registration or an intention from the mesh unnoticed.
   */
  static async open(store: Store, opts: CatalogOptions): Promise<Catalog> {
    const catalog = new Catalog(store, opts);
    for (const { value } of await storedInstances.list(store)) catalog.index.put(value);
    for (const { value } of await storedConfigEntries.list(store)) catalog.index.putConfig(value);
    for (const instance of catalog.index.allInstances()) catalog.timers.sync(instance.checks);
    opts.logger.info({ instances: catalog.index.allInstances().length }, 'catalog loaded');
    return catalog;
  }

  get datacenter(): string {
    return this.opts.datacenter;
  }

  /** Registers a service (and its `Connect` sidecar); resolves with the instances written. */
  async register(input: unknown): Promise<readonly ServiceInstance[]> {
    const parsed = parseRegistration(input, { datacenter: this.opts.datacenter });
    if (!parsed.ok) throw invalidInput(parsed.error);
    const changes = await this.write(
      (tx, ctx) => {
        const plan = planRegistration(parsed.value, ctx);
        if (!plan.ok) throw invalidInput(plan.error);
        return this.stage(tx, plan.value);
      },
      (committed) => this.applyInstances(committed),
    );
    return changes.upserts.map((s) => s.instance);
  }

  /**
   * Removes an instance and the sidecar registered through its `Connect`; resolves with what was
   * removed.
   */
  async deregister(id: string): Promise<readonly ServiceInstance[]> {
    const changes = await this.write(
      (tx, ctx) => {
        const plan = planDeregistration(id, ctx.index);
        if (!plan)
          throw new IsthmusError(
            'not_found',
            `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`,
          );
        return this.stage(tx, plan);
      },
      (committed) => this.applyInstances(committed),
    );
    return changes.removals;
  }

  /** A TTL check heartbeat (`/v1/agent/check/{pass,warn,fail}`). */
  async updateTtlCheck(
    checkId: string,
    status: HealthStatus,
    output: string,
  ): Promise<ServiceInstance> {
    const update = await this.write(
      (tx, ctx) => {
        const plan = planCheckUpdate(checkId, status, output, ctx);
        if (!plan)
          throw new IsthmusError('not_found', `Unknown check ID ${JSON.stringify(checkId)}`);
        this.stage(tx, { upserts: plan.upserts, removals: [] });
        return plan;
      },
      (committed) =>
        this.applyInstances({ upserts: committed.upserts, removals: [] }, committed.changed),
    );
    return update.upserts[0]!.instance;
  }

  /**
   * Writes a config entry. `peers` are the peerings entries may name (a `service-resolver`'s
   * targets, a `sameness-group`'s members); references to and from other entries are checked
   * against the committed state (src/catalog/entry-graph.ts), as is a delete.
   */
  async putConfigEntry(
    input: unknown,
    opts: { readonly peers?: () => readonly string[] } = {},
  ): Promise<ConfigRecord> {
    this.refuseReplicatedWrite();
    const parsed = parseConfigEntry(input);
    if (!parsed.ok) throw invalidInput(parsed.error);
    const entry = parsed.value;
    return this.write(
      (tx, ctx) => {
        const problems = checkEntryWrite(entry, ctx.index, opts.peers?.() ?? []);
        if (problems.length > 0) throw invalidInput(problems);
        const existing = ctx.index.config(entry.kind, entry.name);
        const rec: ConfigRecord = {
          entry,
          createIndex: existing?.createIndex ?? ctx.revision,
          modifyIndex: ctx.revision,
        };
        storedConfigEntries.put(tx, configId(entry.kind, entry.name), rec);
        return rec;
      },
      (rec) => {
        this.index.putConfig(rec);
        this.emit({ kind: 'config-entry-changed', entryKind: entry.kind, name: entry.name });
      },
    );
  }

  async deleteConfigEntry(kind: string, name: string): Promise<void> {
    this.refuseReplicatedWrite();
    const parsedKind = parseConfigKind(kind);
    if (!parsedKind.ok) throw invalidInput(parsedKind.error);
    const entryKind = parsedKind.value;
    await this.write(
      (tx, ctx) => {
        if (!ctx.index.config(entryKind, name))
          throw new IsthmusError('not_found', `config entry ${entryKind}/${name} not found`);
        const problems = checkEntryDelete(entryKind, name, ctx.index);
        if (problems.length > 0) throw invalidInput(problems);
        storedConfigEntries.delete(tx, configId(entryKind, name));
      },
      () => {
        this.index.removeConfig(entryKind, name);
        this.emit({ kind: 'config-entry-changed', entryKind, name });
      },
    );
  }

  /**
   * WAN federation, a secondary: makes the config entries exactly the primary's, in one
   * transaction (entries are checked against each other in the primary, where they were written).
   * Resolves with the number of entries written or deleted; each one is a `config-entry-changed`.
   */
  async replaceConfigEntries(entries: readonly ConfigEntry[]): Promise<number> {
    const key = (e: ConfigEntry) => configId(e.kind, e.name);
    const wanted = new Map(entries.map((e) => [key(e), e]));
    const changed = await this.write(
      (tx, ctx) => {
        const out: { put?: ConfigRecord; removed?: ConfigEntry }[] = [];
        for (const [id, entry] of wanted) {
          const existing = ctx.index.config(entry.kind, entry.name);
          if (existing && JSON.stringify(existing.entry) === JSON.stringify(entry)) continue;
          const rec: ConfigRecord = {
            entry,
            createIndex: existing?.createIndex ?? ctx.revision,
            modifyIndex: ctx.revision,
          };
          storedConfigEntries.put(tx, id, rec);
          out.push({ put: rec });
        }
        for (const rec of ctx.index.allConfig()) {
          if (wanted.has(key(rec.entry))) continue;
          storedConfigEntries.delete(tx, key(rec.entry));
          out.push({ removed: rec.entry });
        }
        return out;
      },
      (out) => {
        for (const { put, removed } of out) {
          if (put) this.index.putConfig(put);
          if (removed) this.index.removeConfig(removed.kind, removed.name);
        }
        for (const { put, removed } of out) {
          const e = (put?.entry ?? removed)!;
          this.emit({ kind: 'config-entry-changed', entryKind: e.kind, name: e.name });
        }
      },
    );
    return changed.length;
  }

  private refuseReplicatedWrite(): void {
    const primary = this.opts.configEntriesFrom;
    if (primary === undefined) return;
    throw new IsthmusError(
      'failed_precondition',
      `config entries are global in WAN federation: write them in the primary datacenter ${primary}, which replicates them here (this is ${this.opts.datacenter})`,
    );
  }

  instance(id: string): ServiceInstance | undefined {
    return this.index.get(id)?.instance;
  }

  /** The instance that holds the check `checkId`. */
  checkOwner(checkId: string): ServiceInstance | undefined {
    return this.index.checkOwner(checkId);
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

  configEntry<K extends ConfigEntryKind>(
    kind: K,
    name: string,
  ): Extract<ConfigEntry, { kind: K }> | undefined {
    return this.index.config(kind, name)?.entry as Extract<ConfigEntry, { kind: K }> | undefined;
  }

  configEntries<K extends ConfigEntryKind>(kind: K): readonly Extract<ConfigEntry, { kind: K }>[] {
    return this.index.configsOf(kind).map((r) => r.entry as Extract<ConfigEntry, { kind: K }>);
  }

  /** A config entry with its CreateIndex/ModifyIndex (for the HTTP API). */
  configRecord(kind: ConfigEntryKind, name: string): ConfigRecord | undefined {
    return this.index.config(kind, name);
  }

  /** Every config entry of every kind (what a primary replicates). */
  allConfigEntries(): readonly ConfigEntry[] {
    return this.index.allConfig().map((r) => r.entry);
  }

  configRecords(kind: ConfigEntryKind): readonly ConfigRecord[] {
    return this.index.configsOf(kind);
  }

  subscribe(listener: (event: CatalogEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops TTL timers and waits for writes in flight; later writes fail `unavailable`. */
  async close(): Promise<void> {
    this.closed = true;
    this.timers.clear();
    await this.queue.catch(() => undefined);
    this.listeners.clear();
  }

  /**
   * Runs `fn` in one Store transaction, then `after` with its result once committed; writes run one
   * at a time, so `ctx.index` is the committed state. The revision is read inside the transaction
   * (Store transactions are serialized too), so it is exactly the one the write commits at.
   */
  private write<T>(
    fn: (tx: StoreTxn, ctx: PlanContext) => T,
    after: (result: T) => void,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new IsthmusError('unavailable', 'catalog is closed'));
    const run = this.queue.then(async () => {
      const result = await this.store.txn(async (tx) => {
        const revision = (await this.store.revision()) + 1;
        return fn(tx, { index: this.index, now: this.clock.now(), revision });
      });
      after(result);
      return result;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private stage(tx: StoreTxn, changes: InstanceChanges): InstanceChanges {
    for (const stored of changes.upserts) storedInstances.put(tx, stored.instance.id, stored);
    for (const instance of changes.removals) storedInstances.delete(tx, instance.id);
    return changes;
  }

  /**
   * After a commit: index first, then timers, then events (listeners see the index they were told
   * about).
   */
  private applyInstances(changes: InstanceChanges, notify = true): void {
    const previous = new Map(
      changes.upserts.map((s) => [s.instance.id, this.index.get(s.instance.id)?.instance]),
    );
    for (const instance of changes.removals) {
      this.index.remove(instance.id);
      this.timers.disarmAll(instance.checks);
    }
    for (const stored of changes.upserts) {
      if (previous.get(stored.instance.id))
        this.timers.disarmAll(previous.get(stored.instance.id)!.checks);
      this.index.put(stored);
      this.timers.sync(stored.instance.checks);
    }
    if (!notify) return;
    for (const instance of changes.removals) this.emit({ kind: 'instance-removed', instance });
    for (const { instance } of changes.upserts)
      this.emit({ kind: 'instance-upserted', instance, previous: previous.get(instance.id) });
  }

  private async expire(checkId: string): Promise<void> {
    try {
      await this.write(
        (tx, ctx) => {
          const plan = planExpiry(checkId, ctx);
          if (plan) this.stage(tx, { upserts: plan.upserts, removals: [] });
          return plan;
        },
        (plan) => {
          if (!plan) return this.rearmIfPending(checkId);
          this.opts.logger.info(
            { checkId, serviceId: plan.upserts[0]!.instance.id },
            'TTL check expired',
          );
          this.applyInstances({ upserts: plan.upserts, removals: [] });
        },
      );
    } catch (err) {
      if (this.closed) return;
      // A check that cannot be marked critical now (a full disk) must still expire once the store
      // takes writes again, or a dead instance keeps receiving traffic.
      this.opts.logger.error(
        { checkId, error: (err as Error).message, retryInMs: expiryRetryMs },
        'failed to expire TTL check; retrying',
      );
      this.timers.retryLater(checkId, expiryRetryMs);
    }
  }

  /**
   * An expiry that found its check not yet due (a clock that moved back) must not drop the timer.
   */
  private rearmIfPending(checkId: string): void {
    const check = this.index.checkOwner(checkId)?.checks.find((c) => c.checkId === checkId);
    if (check && !this.closed) this.timers.sync([check]);
  }

  private emit(event: CatalogEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.opts.logger.error({ err, event: event.kind }, 'catalog listener threw');
      }
    }
  }
}

function configId(kind: ConfigEntryKind, name: string): string {
  return `${kind}/${name}`;
}
