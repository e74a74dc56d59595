import { performance } from 'node:perf_hooks';
import { IsthmusError } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import { allTypeUrls, shortName, typeIndex, type XdsTypeUrl } from '../types.js';
import { CacheEntry, encodeResource, type EncodedResource, type EnvoyMessage } from './entry.js';
import { checkConsistency, PublishedView, type ProxyView, type TypeMaps } from './proxy-view.js';
import { EntriesDraft, TypeEntries } from './type-entries.js';

export type ResourceInput = EncodedResource | EnvoyMessage;

export interface ViewUpdate {
  readonly upsert?: readonly ResourceInput[];
  readonly remove?: Removals;
}

/** Resources a ViewUpdate removes, by type and name. */
type Removals = readonly { readonly typeUrl: XdsTypeUrl; readonly name: string }[];

/** Told of every view published for the node id it watches. */
export interface ViewWatcher {
  viewPublished(view: ProxyView): void;
}

/** A type's entries being built for a publish, before they become a TypeEntries. */
type Building = EntriesDraft;

function isEncoded(r: ResourceInput): r is EncodedResource {
  return (r as EncodedResource).bytes instanceof Uint8Array;
}

/**
 * The xDS cache: proxy views (node id → names → entries) over one pool of shared, encoded-once
 * entries. Publishing a view checks it for consistency first and refuses an inconsistent one, so a
 * proxy keeps its last good config. This is the only seam between config generation and streams:
 * streams `watch` a node id and read its current view. What the push path may assume of the views
 * published here is listed in docs/architecture.md §10.
 *
 * A type whose entries did not change keeps its TypeEntries object across publishes, so streams
 * can skip it by identity and the pool's use counts are touched only for types that changed.
 */
export class XdsCache {
  /** type → version → entry, for entries some view uses. */
  private readonly pool = new Map<XdsTypeUrl, Map<string, CacheEntry>>();
  /** Per node id, its view and watchers: a publish finds both with one lookup. */
  private readonly nodes = new Map<string, NodeSlot>();
  /** Per type index, the entries most recently published (see `shared`). */
  private readonly recent: (TypeEntries | undefined)[] = allTypeUrls.map(() => undefined);
  private revisionCounter = 0;
  /** The last `updateProxyResources` of a published view and its result (see UpdateResult). */
  private lastUpdate: UpdateResult | undefined;
  /** Numbers the calls of `keepMatching` (see CacheEntry.matchedIn). */
  private matchPass = 0;
  private entries = 0;

  constructor(private readonly metrics?: Metrics) {}

  /** Encodes a resource (counted in isthmus_xds_resource_encodes_total). */
  encode(message: EnvoyMessage): EncodedResource {
    return encodeResource(message, (t) => this.metrics?.xdsEncodes.inc({ type: shortName[t] }));
  }

  view(nodeId: string): ProxyView | undefined {
    return this.nodes.get(nodeId)?.view;
  }

  /** Distinct encoded resources held (shared across all proxies). */
  get entryCount(): number {
    return this.entries;
  }

  /**
   * Replaces the proxy's whole view. Throws (and changes nothing) when it is inconsistent. Callers
   * republish whole views on every change, so a type whose resources are exactly those of entries
   * already published (the proxy's own, or those last published for the type to any proxy) is
   * recognised first and takes them without a Map being built.
   */
  setProxyResources(nodeId: string, resources: readonly ResourceInput[]): ProxyView {
    const encoded: EncodedResource[] = new Array(resources.length);
    for (let i = 0; i < resources.length; i++) {
      const r = resources[i]!;
      encoded[i] = isEncoded(r) ? r : this.encode(r);
    }
    const slot = this.nodes.get(nodeId);
    const old = slot?.view;
    const kept: (TypeEntries | undefined)[] = allTypeUrls.map(() => undefined);
    let keptCount = 0;
    if (old?.inputs?.length === encoded.length)
      keptCount = keepIdentical(old, old.inputs, encoded, kept);
    else if (old) keptCount = this.keepMatching(old.byIndex, encoded, kept);
    if (keptCount < (old ? typeCount(old) : allTypeUrls.length))
      keptCount += this.keepMatching(this.recent, encoded, kept);
    const rest =
      keptCount === 0 ? encoded : encoded.filter((r) => kept[typeIndex(r.typeUrl)] === undefined);
    const building: (Building | undefined)[] = allTypeUrls.map(() => undefined);
    return this.publish(nodeId, slot, kept, building, { upsert: rest }, true, encoded);
  }

  /**
   * Upserts and removes some resources of the proxy's view. Throws when the result is inconsistent.
   */
  updateProxyResources(nodeId: string, update: ViewUpdate): ProxyView {
    const slot = this.nodes.get(nodeId);
    const upsert = (update.upsert ?? []).map((r) => (isEncoded(r) ? r : this.encode(r)));
    const remove = update.remove ?? [];
    const old = slot?.view;
    // The same change to the same entries as the last update: its result, without building it
    // again (an endpoint move published to thousands of proxies that held the same entries).
    const repeated = old && this.lastUpdate?.repeatedBy(old.byIndex, upsert, remove);
    if (repeated) return this.install(nodeId, slot, repeated);
    const touched = new Set<number>();
    for (const r of remove) touched.add(typeIndex(r.typeUrl));
    for (const r of upsert) touched.add(typeIndex(r.typeUrl));
    // Types the update does not touch keep their entries whole; touched ones take the changes
    // over their entries, without a copy (issue 14).
    const kept = allTypeUrls.map((_, i) => (touched.has(i) ? undefined : old?.byIndex[i]));
    const building = allTypeUrls.map((_, i) =>
      touched.has(i) ? new EntriesDraft(old?.byIndex[i]) : undefined,
    );
    const view = this.publish(nodeId, slot, kept, building, { remove, upsert }, false);
    if (old) this.lastUpdate = new UpdateResult(old.byIndex, upsert, remove, view.byIndex);
    return view;
  }

  /** Forgets the proxy: its open streams see an empty view (every resource removed). */
  removeProxy(nodeId: string): void {
    const slot = this.nodes.get(nodeId);
    const old = slot?.view;
    if (!slot || !old) return;
    slot.view = undefined;
    if (!slot.watcher) this.nodes.delete(nodeId);
    for (const entries of old.byIndex) if (entries) this.release(entries);
    this.notify(
      slot,
      this.makeView(
        nodeId,
        allTypeUrls.map(() => undefined),
      ),
    );
  }

  /**
   * Tells `watcher` of every view published for the node id from now on (a function is called
   * with it). Streams watch as themselves: a publish to thousands of them reaches each without a
   * closure in between. As with an EventEmitter, a view goes to the watchers there were when it
   * was published: one that stops watching meanwhile still hears of it, one that starts does not,
   * and watching twice means being told twice.
   */
  watch(nodeId: string, watcher: ViewWatcher | ((view: ProxyView) => void)): () => void {
    let slot = this.nodes.get(nodeId);
    if (!slot)
      this.nodes.set(nodeId, (slot = { view: undefined, watcher: undefined, others: noWatchers }));
    const watched = slot;
    const w: ViewWatcher = typeof watcher === 'function' ? { viewPublished: watcher } : watcher;
    if (!watched.watcher) watched.watcher = w;
    else watched.others = [...watched.others, w];
    return () => {
      if (watched.watcher === w) {
        watched.watcher = watched.others[0];
        watched.others = watched.others.slice(1);
      } else watched.others = watched.others.filter((x) => x !== w);
      if (!watched.watcher && !watched.view && this.nodes.get(nodeId) === watched)
        this.nodes.delete(nodeId);
    };
  }

  /**
   * Sets in `kept` each type not in it yet whose resources in `encoded` are exactly the entries
   * `candidates` holds for it (by type index): the same names with the same versions, none given
   * twice. A Map lookup per resource. Returns how many types it set.
   */
  private keepMatching(
    candidates: TypeMaps,
    encoded: readonly EncodedResource[],
    kept: (TypeEntries | undefined)[],
  ): number {
    const pass = ++this.matchPass;
    // Per type index: resources matched so far, or -1 once one did not match.
    const matched: number[] = [];
    for (let i = 0; i < allTypeUrls.length; i++)
      matched.push(kept[i] !== undefined || candidates[i] === undefined ? -1 : 0);
    for (const r of encoded) {
      const i = typeIndex(r.typeUrl);
      if (matched[i]! < 0) continue;
      const entry = candidates[i]!.get(r.name);
      // An entry no view uses any more has left the pool (the last published Map may hold such).
      if (entry?.version !== r.version || entry.matchedIn === pass || entry.users === 0) {
        matched[i] = -1;
        continue;
      }
      entry.matchedIn = pass;
      matched[i]!++;
    }
    let count = 0;
    for (let i = 0; i < allTypeUrls.length; i++) {
      const candidate = candidates[i];
      if (candidate && matched[i] === candidate.size) {
        kept[i] = candidate;
        count++;
      }
    }
    return count;
  }

  /**
   * Publishes, per type index, the entries `kept` whole, else those `building` holds once `update`
   * is applied to it. `fresh`: no input is of a kept type and `building` starts empty, so a name
   * already in a Map being built was upserted twice.
   */
  private publish(
    nodeId: string,
    slot: NodeSlot | undefined,
    kept: TypeMaps,
    building: (Building | undefined)[],
    update: ViewUpdate,
    fresh: boolean,
    inputs?: readonly EncodedResource[],
  ): ProxyView {
    const created: CacheEntry[] = [];
    try {
      return this.publishWith(nodeId, slot, kept, building, update, fresh, created, inputs);
    } finally {
      // Entries made for this publish that no view took (refused view, unchanged type) go again.
      for (const entry of created) if (entry.users === 0) this.unpool(entry);
    }
  }

  private publishWith(
    nodeId: string,
    slot: NodeSlot | undefined,
    kept: TypeMaps,
    building: (Building | undefined)[],
    update: ViewUpdate,
    fresh: boolean,
    created: CacheEntry[],
    inputs: readonly EncodedResource[] | undefined,
  ): ProxyView {
    const old = slot?.view;
    const errors: string[] = [];
    // Per type index, whether the names stayed those of the old view's entries (no name came or
    // went), so what changed is known without comparing every entry.
    const sameNames = allTypeUrls.map(() => !fresh);
    for (const r of update.remove ?? []) {
      const i = typeIndex(r.typeUrl);
      if (building[i]?.delete(r.name)) sameNames[i] = false;
    }
    const upserted = fresh ? undefined : new Map<XdsTypeUrl, Set<string>>();
    for (const input of update.upsert ?? []) {
      const encoded = isEncoded(input) ? input : this.encode(input);
      const i = typeIndex(encoded.typeUrl);
      const byName = (building[i] ??= new EntriesDraft());
      if (upserted) {
        let names = upserted.get(encoded.typeUrl);
        if (!names) upserted.set(encoded.typeUrl, (names = new Set()));
        if (names.has(encoded.name)) errors.push(duplicate(encoded));
        names.add(encoded.name);
      } else if (byName.has(encoded.name)) errors.push(duplicate(encoded));
      if (!byName.has(encoded.name)) sameNames[i] = false;
      byName.set(encoded.name, this.entryFor(encoded, created));
    }
    const maps: (TypeEntries | undefined)[] = [];
    for (let i = 0; i < allTypeUrls.length; i++) {
      const byName = building[i];
      const previous = old?.byIndex[i];
      const changed =
        sameNames[i] && previous && byName
          ? changedEntries(previous, byName, upserted, i)
          : undefined;
      maps.push(
        kept[i] ??
          (byName && byName.size > 0 ? this.shared(i, byName, previous, changed) : undefined),
      );
    }
    errors.push(...checkConsistency(maps));
    if (errors.length > 0) {
      throw new IsthmusError(
        'failed_precondition',
        `inconsistent xDS view for proxy "${nodeId}": ${errors.join('; ')}`,
      );
    }
    return this.install(nodeId, slot, maps, inputs);
  }

  /** Publishes a view of `maps`, found consistent, unless it holds what the proxy has. */
  private install(
    nodeId: string,
    slot: NodeSlot | undefined,
    maps: TypeMaps,
    inputs?: readonly EncodedResource[],
  ): ProxyView {
    const old = slot?.view;
    if (!old) {
      for (const byName of maps) if (byName) this.acquire(byName);
    } else if (!this.moveUseCounts(old, maps)) return old;
    const view = this.makeView(nodeId, maps, inputs);
    if (slot) slot.view = view;
    else this.nodes.set(nodeId, { view, watcher: undefined, others: noWatchers });
    if (slot) this.notify(slot, view);
    return view;
  }

  /**
   * Published entries are immutable, so equal ones can be one object: the proxy's previous entries
   * of the type when the same, else those last published for the type (to any proxy) when equal,
   * else new TypeEntries of `byName`, which become those. A thousand proxies given the same
   * endpoints then share one TypeEntries, and whatever streams derive from it (its sorted entries,
   * its consistency, its change from the previous) is computed once for all of them.
   */
  private shared(
    i: number,
    byName: Building,
    previous: TypeEntries | undefined,
    changed?: readonly CacheEntry[],
  ): TypeEntries {
    const recent = this.recent[i];
    if (previous && (changed ? changed.length === 0 : sameEntries(previous, byName)))
      return previous;
    if (recent && recent !== previous) {
      // A change published to thousands of proxies that held the same entries: each finds the
      // first one's result by what changed, not by comparing all its entries (issue 14).
      if (changed && previous && sameChange(recent, previous, changed)) return recent;
      if (sameEntries(recent, byName)) return recent;
    }
    const entries = new TypeEntries(byName, previous, changed);
    this.recent[i] = entries;
    return entries;
  }

  /**
   * Moves use counts from the old view's Maps to the new one's, for types whose Map changed; true
   * if any did.
   */
  private moveUseCounts(old: ProxyView, next: TypeMaps): boolean {
    let changed = false;
    for (let i = 0; i < allTypeUrls.length; i++) {
      const previous = old.byIndex[i];
      const byName = next[i];
      if (previous === byName) continue;
      changed = true;
      // Derived from the old entries: only the entries that differ change hands.
      const differing = byName?.changedSince(previous);
      if (differing && previous) {
        for (const entry of differing) entry.users++;
        for (const entry of differing) this.releaseOne(previous.get(entry.name)!);
        continue;
      }
      if (byName) this.acquire(byName);
      if (previous) this.release(previous);
    }
    return changed;
  }

  private makeView(
    nodeId: string,
    byIndex: TypeMaps,
    inputs?: readonly EncodedResource[],
  ): ProxyView {
    return new PublishedView(nodeId, ++this.revisionCounter, performance.now(), byIndex, inputs);
  }

  /** The pooled entry for this content, or a new pooled one (kept once a view uses it). */
  private entryFor(encoded: EncodedResource, created: CacheEntry[]): CacheEntry {
    let versions = this.pool.get(encoded.typeUrl);
    if (!versions) this.pool.set(encoded.typeUrl, (versions = new Map()));
    let entry = versions.get(encoded.version);
    if (!entry) {
      versions.set(encoded.version, (entry = new CacheEntry(encoded)));
      this.entries++;
      created.push(entry);
    }
    return entry;
  }

  private acquire(byName: ReadonlyMap<string, CacheEntry>): void {
    for (const entry of byName.values()) entry.users++;
  }

  private release(byName: ReadonlyMap<string, CacheEntry>): void {
    for (const entry of byName.values()) this.releaseOne(entry);
  }

  private releaseOne(entry: CacheEntry): void {
    if (--entry.users === 0) this.unpool(entry);
  }

  private unpool(entry: CacheEntry): void {
    // The last update's result may hold this entry: it must not be handed out again.
    this.lastUpdate = undefined;
    const versions = this.pool.get(entry.typeUrl);
    if (versions?.get(entry.version) !== entry) return;
    versions.delete(entry.version);
    this.entries--;
  }

  private notify(slot: NodeSlot, view: ProxyView): void {
    // `others` is replaced, never changed, when watchers come and go: one that unwatches during
    // the loop does not disturb it.
    const others = slot.others;
    slot.watcher?.viewPublished(view);
    for (const watcher of others) watcher.viewPublished(view);
  }
}

/**
 * One node id's view and the streams watching it: mostly one, kept in a field, so a publish to
 * thousands of streams does not read an array per stream.
 */
interface NodeSlot {
  view: ProxyView | undefined;
  watcher: ViewWatcher | undefined;
  others: readonly ViewWatcher[];
}

const noWatchers: readonly ViewWatcher[] = Object.freeze([]);

/**
 * An update as applied to a view: the entries before, what it upserted and removed, and the
 * entries it published. The same update to the very same entries publishes the same entries (they
 * are immutable values, and the result was found consistent), so a change published to thousands
 * of proxies is built once and the others take its result: a pointer comparison per type and per
 * input (issue 14).
 */
class UpdateResult {
  constructor(
    private readonly before: TypeMaps,
    private readonly upsert: readonly EncodedResource[],
    private readonly remove: Removals,
    private readonly after: TypeMaps,
  ) {}

  /** The entries published, if `maps` and the update are those this result came from. */
  repeatedBy(
    maps: TypeMaps,
    upsert: readonly EncodedResource[],
    remove: Removals,
  ): TypeMaps | undefined {
    if (upsert.length !== this.upsert.length || remove.length !== this.remove.length) return;
    for (let i = 0; i < maps.length; i++) if (maps[i] !== this.before[i]) return;
    for (let i = 0; i < upsert.length; i++) if (upsert[i] !== this.upsert[i]) return;
    for (let i = 0; i < remove.length; i++) {
      const a = remove[i]!;
      const b = this.remove[i]!;
      if (a.typeUrl !== b.typeUrl || a.name !== b.name) return;
    }
    return this.after;
  }
}

/**
 * Sets in `kept` the old view's Map of each type whose resources are, position by position, the
 * very objects the old view was published from (EncodedResources do not change): a pointer
 * comparison per resource, where callers republish mostly the same encoded resources. Returns how
 * many types it set.
 */
function keepIdentical(
  old: ProxyView,
  before: readonly EncodedResource[],
  encoded: readonly EncodedResource[],
  kept: (TypeEntries | undefined)[],
): number {
  let changed = 0; // bit per type index
  for (let i = 0; i < encoded.length; i++) {
    const now = encoded[i]!;
    const then = before[i]!;
    if (now !== then) changed |= (1 << typeIndex(now.typeUrl)) | (1 << typeIndex(then.typeUrl));
  }
  let count = 0;
  for (let i = 0; i < allTypeUrls.length; i++) {
    const previous = old.byIndex[i];
    if (previous && (changed & (1 << i)) === 0) {
      kept[i] = previous;
      count++;
    }
  }
  return count;
}

/**
 * The upserted entries of type `i` that differ from `previous`, when the names stayed the same:
 * what a TypeEntries derived from `previous` records, found without comparing every entry.
 */
function changedEntries(
  previous: TypeEntries,
  byName: Building,
  upserted: ReadonlyMap<XdsTypeUrl, ReadonlySet<string>> | undefined,
  i: number,
): CacheEntry[] | undefined {
  const names = upserted?.get(allTypeUrls[i]!);
  if (!names) return [];
  const out: CacheEntry[] = [];
  for (const name of names) {
    const entry = byName.get(name)!;
    if (previous.get(name) !== entry) out.push(entry);
  }
  return out;
}

function typeCount(view: ProxyView): number {
  let n = 0;
  for (const entries of view.byIndex) if (entries) n++;
  return n;
}

function duplicate(r: EncodedResource): string {
  return `duplicate ${shortName[r.typeUrl]} resource "${r.name}"`;
}

/**
 * Whether `recent` is `previous` with exactly the entries `changed` (which differ from
 * `previous`'s under the same names) put in: it was published as a change of `previous` with as
 * many changed entries, and holds each of these. Each name of `changed` then differs in `recent`
 * from `previous`, so it is one of `recent`'s changed names; as many of them, they are all of
 * them, and every other name holds `previous`'s entry in both.
 */
function sameChange(
  recent: TypeEntries,
  previous: TypeEntries,
  changed: readonly CacheEntry[],
): boolean {
  const recentChanged = recent.changedSince(previous);
  if (recentChanged?.length !== changed.length) return false;
  for (const entry of changed) if (recent.get(entry.name) !== entry) return false;
  return true;
}

function sameEntries(
  a: ReadonlyMap<string, CacheEntry>,
  b: Pick<ReadonlyMap<string, CacheEntry>, 'get' | 'size'>,
): boolean {
  if (a.size !== b.size) return false;
  for (const [name, entry] of a) if (b.get(name) !== entry) return false;
  return true;
}
