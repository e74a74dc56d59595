import { IsthmusError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store, StoreEvent, TxnOptions } from '../store/store.js';
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
import { configId, type Planned, type Staging, WriteBatch } from './write-batch.js';

export type { ConfigRecord, StoredInstance } from './catalog-index.js';

/** How long a TTL expiry the store refused (a full disk) waits before it is tried again. */
const expiryRetryMs = 1_000;

export interface CatalogOptions {
  /** This server's datacenter (the default `Datacenter` of registrations). */
  readonly datacenter: string;
  readonly logger: Logger;
  readonly clock?: Clock;
  /**
   * Several servers on one store: whether this one leads the cluster. Only the leader marks an
   * expired TTL check critical (a write fenced on its lease); the others keep the timers armed and
   * look again every `expiryRetryMs`, so a new leader expires what is overdue within that.
   * Absent: this server alone expires checks.
   */
  readonly isLeader?: () => boolean;
  /**
   * WAN federation, a secondary (docs/architecture.md §6c): config entries are global, written in
   * this primary datacenter and replicated here (`replaceConfigEntries`); a local write is refused
   * naming it.
   */
  readonly configEntriesFrom?: string | undefined;
}

/** Every catalog key is under this prefix (instances and config entries). */
const catalogPrefix = 'catalog/';

/**
 * Services, instances, health checks and config entries of this cluster. Writes are queued and
 * committed in batches: each validates against the committed state plus the earlier writes of its
 * batch, and a batch commits in one Store transaction (a write that fails validation fails alone
 * and changes nothing). The in-memory index follows the Store watch, so it takes this server's writes
 * (delivered before their transaction resolves) and every other server's alike, then emits
 * `CatalogEvent`s. Reads are synchronous lookups over the index, for the snapshot layer.
 *
 * Several servers on one store (etcd): a write validates against this server's index, so it first
 * waits for the index to catch up with the store, and commits only if no catalog key changed
 * since (`tx.unchanged`); otherwise it runs again on the newer index.
 */
export class Catalog implements CatalogReader {
  private readonly index = new CatalogIndex();
  private readonly listeners = new Set<(event: CatalogEvent) => void>();
  private readonly timers: TtlTimers;
  private readonly clock: Clock;
  /** The batch loop, while it runs (`close` and `writesSettled` wait for it). */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly waiting: QueuedWrite[] = [];
  private running = false;
  private closed = false;
  private readonly unwatch: () => void;

  private constructor(
    private readonly store: Store,
    private readonly opts: CatalogOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.timers = new TtlTimers(this.clock, (checkId) => void this.expire(checkId));
    this.unwatch = store.watch(catalogPrefix, (event) => this.apply(event));
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
    const changes = await this.write((staging, ctx) => {
      const plan = planRegistration(parsed.value, ctx);
      if (!plan.ok) throw invalidInput(plan.error);
      return staging.instances(plan.value);
    });
    return changes.upserts.map((s) => s.instance);
  }

  /**
   * Removes an instance and the sidecar registered through its `Connect`; resolves with what was
   * removed.
   */
  async deregister(id: string): Promise<readonly ServiceInstance[]> {
    const changes = await this.write((staging, ctx) => {
      const plan = planDeregistration(id, ctx.index);
      if (!plan)
        throw new IsthmusError(
          'not_found',
          `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`,
        );
      return staging.instances(plan);
    });
    return changes.removals;
  }

  /** A TTL check heartbeat (`/v1/agent/check/{pass,warn,fail}`). */
  async updateTtlCheck(
    checkId: string,
    status: HealthStatus,
    output: string,
  ): Promise<ServiceInstance> {
    const update = await this.write((staging, ctx) => {
      const plan = planCheckUpdate(checkId, status, output, ctx);
      if (!plan) throw new IsthmusError('not_found', `Unknown check ID ${JSON.stringify(checkId)}`);
      staging.instances({ upserts: plan.upserts, removals: [] });
      return plan;
    });
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
    return this.write((staging, ctx) => {
      const problems = checkEntryWrite(entry, ctx.index, opts.peers?.() ?? []);
      if (problems.length > 0) throw invalidInput(problems);
      const existing = ctx.index.config(entry.kind, entry.name);
      const rec: ConfigRecord = {
        entry,
        createIndex: existing?.createIndex ?? ctx.revision,
        modifyIndex: ctx.revision,
      };
      staging.putConfig(rec);
      return rec;
    });
  }

  async deleteConfigEntry(kind: string, name: string): Promise<void> {
    this.refuseReplicatedWrite();
    const parsedKind = parseConfigKind(kind);
    if (!parsedKind.ok) throw invalidInput(parsedKind.error);
    const entryKind = parsedKind.value;
    await this.write((staging, ctx) => {
      if (!ctx.index.config(entryKind, name))
        throw new IsthmusError('not_found', `config entry ${entryKind}/${name} not found`);
      const problems = checkEntryDelete(entryKind, name, ctx.index);
      if (problems.length > 0) throw invalidInput(problems);
      staging.deleteConfig(entryKind, name);
    });
  }

  /**
   * WAN federation, a secondary: makes the config entries exactly the primary's, in one
   * transaction (entries are checked against each other in the primary, where they were written).
   * Resolves with the number of entries written or deleted; the store watch applies each one and
   * emits its `config-entry-changed`.
   */
  async replaceConfigEntries(entries: readonly ConfigEntry[]): Promise<number> {
    const key = (e: ConfigEntry) => configId(e.kind, e.name);
    const wanted = new Map(entries.map((e) => [key(e), e]));
    return this.write((staging, ctx) => {
      let changed = 0;
      for (const entry of wanted.values()) {
        const existing = ctx.index.config(entry.kind, entry.name);
        if (existing && JSON.stringify(existing.entry) === JSON.stringify(entry)) continue;
        staging.putConfig({
          entry,
          createIndex: existing?.createIndex ?? ctx.revision,
          modifyIndex: ctx.revision,
        });
        changed++;
      }
      // A copy: staging a delete takes the entry out of the index at once.
      for (const rec of [...ctx.index.allConfig()]) {
        if (wanted.has(key(rec.entry))) continue;
        staging.deleteConfig(rec.entry.kind, rec.entry.name);
        changed++;
      }
      return changed;
    });
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

  /** Resolves when every write submitted so far has finished, committed or failed (tests). */
  async writesSettled(): Promise<void> {
    await this.queue.catch(() => undefined);
  }

  /** Stops TTL timers and waits for writes in flight; later writes fail `unavailable`. */
  async close(): Promise<void> {
    this.closed = true;
    this.unwatch();
    this.timers.clear();
    await this.queue.catch(() => undefined);
    this.listeners.clear();
  }

  /**
   * Queues a write; resolves with what `fn` returned once it is committed and the watch has applied
   * it to the index, or rejects with what `fn` threw (that write alone fails) or with the Store's
   * error (every write of its batch fails).
   */
  private write<T>(
    fn: (staging: Staging, ctx: PlanContext) => T,
    opts: TxnOptions = {},
  ): Promise<T> {
    if (this.closed) return Promise.reject(new IsthmusError('unavailable', 'catalog is closed'));
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({
        plan: fn,
        asLeader: opts.asLeader === true,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      if (this.running) return;
      this.running = true;
      this.queue = this.queue.then(() => this.runBatches());
    });
  }

  /**
   * Commits the queued writes a batch at a time (issue 14: registrations that arrive together
   * commit together, one transaction and one flush per batch, not per registration). The index
   * has caught up with the store first, and each write is planned against the committed state plus
   * the batch's earlier writes (`WriteBatch`), in the order they were queued. The commit fails
   * (and the batch is planned again) if another server changed a catalog key since. The revision
   * is read inside the transaction, so on one server it is exactly the one the batch commits at
   * (with several, the next one after what the index holds).
   */
  private async runBatches(): Promise<void> {
    try {
      while (this.waiting.length > 0) await this.commitBatch(this.nextBatch());
    } finally {
      this.running = false;
    }
  }

  /** The next queued writes that commit together: up to `maxBatchWrites`, all fenced alike. */
  private nextBatch(): QueuedWrite[] {
    const asLeader = this.waiting[0]?.asLeader;
    let n = 0;
    while (n < this.waiting.length && n < maxBatchWrites && this.waiting[n]?.asLeader === asLeader)
      n++;
    return this.waiting.splice(0, n);
  }

  private async commitBatch(writes: readonly QueuedWrite[]): Promise<void> {
    let planned: Planned<unknown>[] = [];
    try {
      await this.store.txn(
        async (tx) => {
          tx.unchanged(catalogPrefix);
          await this.store.caughtUp();
          const revision = (await this.store.revision()) + 1;
          const ctx: PlanContext = { index: this.index, now: this.clock.now(), revision };
          const batch = new WriteBatch(this.index);
          try {
            planned = writes.map((w) => batch.plan((staging) => w.plan(staging, ctx)));
          } finally {
            batch.rollback();
          }
          batch.commitTo(tx);
        },
        writes[0]?.asLeader ? { asLeader: true } : {},
      );
    } catch (err) {
      for (const [i, w] of writes.entries()) {
        const own = planned[i];
        w.reject(own && !own.ok ? own.error : err);
      }
      return;
    }
    for (const [i, w] of writes.entries()) {
      const outcome = planned[i];
      if (outcome?.ok) w.resolve(outcome.value);
      else w.reject(outcome?.error);
    }
  }

  /** A committed change under `catalog/` from any server (the watch), applied to the index. */
  private apply(event: StoreEvent): void {
    if (this.closed) return;
    try {
      if (event.key.startsWith(storedInstances.prefix)) return this.applyInstanceEvent(event);
      if (event.key.startsWith(storedConfigEntries.prefix)) return this.applyConfigEvent(event);
    } catch (err) {
      this.opts.logger.error(
        { key: event.key, error: (err as Error).message },
        'catalog change from the store skipped',
      );
    }
  }

  private applyInstanceEvent(event: StoreEvent): void {
    if (event.kind === 'delete') {
      const gone = this.index.get(storedInstances.idOf(event.key));
      if (gone) this.applyInstances({ upserts: [], removals: [gone.instance] });
      return;
    }
    const stored = storedInstances.decodeEvent(event);
    const previous = this.index.get(stored.instance.id)?.instance;
    // A heartbeat that changed no status or output keeps its modifyIndex: nothing to rebuild.
    const changed = previous?.modifyIndex !== stored.instance.modifyIndex;
    this.applyInstances({ upserts: [stored], removals: [] }, changed);
  }

  private applyConfigEvent(event: StoreEvent): void {
    if (event.kind === 'put') {
      const rec = storedConfigEntries.decodeEvent(event);
      this.index.putConfig(rec);
      this.emit({ kind: 'config-entry-changed', entryKind: rec.entry.kind, name: rec.entry.name });
      return;
    }
    const id = storedConfigEntries.idOf(event.key);
    const slash = id.indexOf('/');
    const entryKind = id.slice(0, slash) as ConfigEntryKind;
    const name = id.slice(slash + 1);
    if (!this.index.config(entryKind, name)) return;
    this.index.removeConfig(entryKind, name);
    this.emit({ kind: 'config-entry-changed', entryKind, name });
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
    const { isLeader } = this.opts;
    if (isLeader && !isLeader()) {
      if (!this.closed) this.timers.retryLater(checkId, expiryRetryMs);
      return;
    }
    try {
      const plan = await this.write(
        (staging, ctx) => {
          const planned = planExpiry(checkId, ctx);
          if (planned) staging.instances({ upserts: planned.upserts, removals: [] });
          return planned;
        },
        isLeader ? { asLeader: true } : {},
      );
      if (!plan) return this.rearmIfPending(checkId);
      this.opts.logger.info(
        { checkId, serviceId: plan.upserts[0]!.instance.id },
        'TTL check expired',
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

/** At most this many queued writes commit in one transaction. */
const maxBatchWrites = 128;

/** A write waiting for its batch. */
interface QueuedWrite {
  readonly plan: (staging: Staging, ctx: PlanContext) => unknown;
  /** Fenced on this server's leader key (`TxnOptions.asLeader`): batched only with its like. */
  readonly asLeader: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}
