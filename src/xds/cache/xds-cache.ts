import { performance } from 'node:perf_hooks';
import { IsthmusError } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import { allTypeUrls, shortName, typeIndex, type XdsTypeUrl } from '../types.js';
import { CacheEntry, encodeResource, type EncodedResource, type EnvoyMessage } from './entry.js';
import { checkConsistency, recordDerivation, type ProxyView } from './proxy-view.js';

export type ResourceInput = EncodedResource | EnvoyMessage;

export interface ViewUpdate {
  readonly upsert?: readonly ResourceInput[];
  readonly remove?: readonly { readonly typeUrl: XdsTypeUrl; readonly name: string }[];
}

type Listener = (view: ProxyView) => void;
type TypeMap = Map<string, CacheEntry>;

function isEncoded(r: ResourceInput): r is EncodedResource {
  return (r as EncodedResource).bytes instanceof Uint8Array;
}

/**
 * The xDS cache: proxy views (node id → names → entries) over one pool of shared, encoded-once
 * entries. Publishing a view checks it for consistency first and refuses an inconsistent one, so a
 * proxy keeps its last good config. This is the only seam between config generation and streams:
 * streams `watch` a node id and read its current view.
 *
 * A type whose entries did not change keeps its Map object across publishes, so streams can skip
 * it by identity and the pool's use counts are touched only for types that changed.
 */
export class XdsCache {
  /** type → version → entry, for entries some view uses. */
  private readonly pool = new Map<XdsTypeUrl, Map<string, CacheEntry>>();
  private readonly views = new Map<string, ProxyView>();
  private readonly listeners = new Map<string, Set<Listener>>();
  /** Per type, the Map most recently published (see `shared`). */
  private readonly recent = new Map<XdsTypeUrl, TypeMap>();
  private revisionCounter = 0;
  private matchPass = 0;
  private entries = 0;

  constructor(private readonly metrics?: Metrics) {}

  /** Encodes a resource (counted in isthmus_xds_resource_encodes_total). */
  encode(message: EnvoyMessage): EncodedResource {
    return encodeResource(message, (t) => this.metrics?.xdsEncodes.inc({ type: shortName[t] }));
  }

  view(nodeId: string): ProxyView | undefined {
    return this.views.get(nodeId);
  }

  /** Distinct encoded resources held (shared across all proxies). */
  get entryCount(): number {
    return this.entries;
  }

  /**
   * Replaces the proxy's whole view. Throws (and changes nothing) when it is inconsistent. Callers
   * republish whole views on every change, so a type whose resources are exactly those of a Map
   * already published (the proxy's own, or the one last published for the type to any proxy) is
   * recognised first and takes that Map without one being built.
   */
  setProxyResources(nodeId: string, resources: readonly ResourceInput[]): ProxyView {
    const encoded = resources.map((r) => (isEncoded(r) ? r : this.encode(r)));
    const old = this.views.get(nodeId);
    const kept = new Map<XdsTypeUrl, TypeMap>();
    if (old?.inputs?.length === encoded.length) this.keepIdentical(old, old.inputs, encoded, kept);
    else if (old) this.keepMatching(old.resources as ReadonlyMap<XdsTypeUrl, TypeMap>, encoded, kept);
    if (kept.size < (old?.resources.size ?? allTypeUrls.length)) this.keepMatching(this.recent, encoded, kept);
    const rest = kept.size === 0 ? encoded : encoded.filter((r) => !kept.has(r.typeUrl));
    return this.publish(nodeId, old, kept, { upsert: rest }, true, encoded);
  }

  /**
   * Adds to `kept` the old view's Map of each type whose resources are, position by position, the
   * very objects the old view was published from (EncodedResources do not change): a pointer
   * comparison per resource, where callers republish mostly the same encoded resources.
   */
  private keepIdentical(old: ProxyView, before: readonly EncodedResource[], encoded: readonly EncodedResource[], kept: Map<XdsTypeUrl, TypeMap>): void {
    const changed = allTypeUrls.map(() => false);
    for (let i = 0; i < encoded.length; i++) {
      const now = encoded[i]!;
      const then = before[i]!;
      if (now === then) continue;
      changed[typeIndex(now.typeUrl)] = true;
      changed[typeIndex(then.typeUrl)] = true;
    }
    allTypeUrls.forEach((t, i) => {
      const previous = old.resources.get(t) as TypeMap | undefined;
      if (previous && !changed[i]) kept.set(t, previous);
    });
  }

  /** Upserts and removes some resources of the proxy's view. Throws when the result is inconsistent. */
  updateProxyResources(nodeId: string, update: ViewUpdate): ProxyView {
    const old = this.views.get(nodeId);
    const base = new Map<XdsTypeUrl, TypeMap>();
    for (const [t, byName] of old?.resources ?? []) base.set(t, new Map(byName));
    return this.publish(nodeId, old, base, update, false);
  }

  /** Forgets the proxy: its open streams see an empty view (every resource removed). */
  removeProxy(nodeId: string): void {
    const old = this.views.get(nodeId);
    if (!old) return;
    this.views.delete(nodeId);
    for (const byName of old.resources.values()) this.release(byName);
    this.notify(nodeId, this.makeView(nodeId, new Map()));
  }

  /** Calls `listener` with every view published for the node id from now on. */
  watch(nodeId: string, listener: Listener): () => void {
    let set = this.listeners.get(nodeId);
    if (!set) this.listeners.set(nodeId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(nodeId);
    };
  }

  /**
   * Adds to `kept` each type not in it yet whose resources in `encoded` are exactly the Map
   * `candidates` holds for it: the same names with the same versions, none given twice. Two Map
   * lookups per resource.
   */
  private keepMatching(candidates: ReadonlyMap<XdsTypeUrl, TypeMap>, encoded: readonly EncodedResource[], kept: Map<XdsTypeUrl, TypeMap>): void {
    const pass = ++this.matchPass;
    // Per type (allTypeUrls order): resources matched so far, or -1 once one did not match.
    const matched = allTypeUrls.map((t) => (kept.has(t) || !candidates.has(t) ? -1 : 0));
    for (const r of encoded) {
      const i = typeIndex(r.typeUrl);
      if (matched[i]! < 0) continue;
      const entry = candidates.get(r.typeUrl)!.get(r.name);
      // An entry no view uses any more has left the pool (the last published Map may hold such).
      if (entry?.version !== r.version || entry.matchedIn === pass || entry.users === 0) {
        matched[i] = -1;
        continue;
      }
      entry.matchedIn = pass;
      matched[i]!++;
    }
    allTypeUrls.forEach((t, i) => {
      const candidate = candidates.get(t);
      if (candidate && matched[i] === candidate.size) kept.set(t, candidate);
    });
  }

  /**
   * `fresh`: `base` holds only published Maps kept whole (see setProxyResources), and no input is
   * of their types, so a name already in a Map being built was upserted twice.
   */
  private publish(
    nodeId: string,
    old: ProxyView | undefined,
    base: Map<XdsTypeUrl, TypeMap>,
    update: ViewUpdate,
    fresh: boolean,
    inputs?: readonly EncodedResource[],
  ): ProxyView {
    const created: CacheEntry[] = [];
    try {
      return this.publishWith(nodeId, old, base, update, fresh, created, inputs);
    } finally {
      // Entries made for this publish that no view took (refused view, unchanged type) go again.
      for (const entry of created) if (entry.users === 0) this.unpool(entry);
    }
  }

  private publishWith(
    nodeId: string,
    old: ProxyView | undefined,
    base: Map<XdsTypeUrl, TypeMap>,
    update: ViewUpdate,
    fresh: boolean,
    created: CacheEntry[],
    inputs: readonly EncodedResource[] | undefined,
  ): ProxyView {
    const errors: string[] = [];
    for (const r of update.remove ?? []) base.get(r.typeUrl)?.delete(r.name);
    const upserted = fresh ? undefined : new Map<XdsTypeUrl, Set<string>>();
    for (const input of update.upsert ?? []) {
      const encoded = isEncoded(input) ? input : this.encode(input);
      let byName = base.get(encoded.typeUrl);
      if (!byName) base.set(encoded.typeUrl, (byName = new Map()));
      if (upserted) {
        let names = upserted.get(encoded.typeUrl);
        if (!names) upserted.set(encoded.typeUrl, (names = new Set()));
        if (names.has(encoded.name)) errors.push(duplicate(encoded));
        names.add(encoded.name);
      } else if (byName.has(encoded.name)) errors.push(duplicate(encoded));
      byName.set(encoded.name, this.entryFor(encoded, created));
    }
    const resources = new Map<XdsTypeUrl, TypeMap>();
    for (const [t, byName] of base) if (byName.size > 0) resources.set(t, this.shared(t, byName, old?.resources.get(t) as TypeMap | undefined));
    errors.push(...checkConsistency(resources));
    if (errors.length > 0) {
      throw new IsthmusError('failed_precondition', `inconsistent xDS view for proxy "${nodeId}": ${errors.join('; ')}`);
    }
    if (!old) for (const byName of resources.values()) this.acquire(byName);
    else if (!this.moveUseCounts(old, resources)) return old;
    const view = this.makeView(nodeId, resources, inputs);
    this.views.set(nodeId, view);
    this.notify(nodeId, view);
    return view;
  }

  /**
   * A published type Map is never mutated, so equal Maps can be one object: the proxy's previous
   * Map of the type when its entries are the same, else the Map last published for the type (to
   * any proxy) when equal, else `byName`, which becomes that. A thousand proxies given the same
   * endpoints then share one Map, and whatever streams derive from a Map (its sorted entries, its
   * consistency) is computed once for all of them.
   */
  private shared(t: XdsTypeUrl, byName: TypeMap, previous: TypeMap | undefined): TypeMap {
    const recent = this.recent.get(t);
    if (byName === previous || byName === recent) return byName; // kept whole by setProxyResources
    if (previous && sameEntries(previous, byName)) return previous;
    if (recent && sameEntries(recent, byName)) return recent;
    this.recent.set(t, byName);
    if (previous) recordDerivation(byName, previous);
    return byName;
  }

  /** Moves use counts from the old view's Maps to the new one's, for types whose Map changed; true if any did. */
  private moveUseCounts(old: ProxyView, next: ReadonlyMap<XdsTypeUrl, TypeMap>): boolean {
    let changed = false;
    for (const [t, byName] of next) {
      const previous = old.resources.get(t);
      if (previous === byName) continue;
      changed = true;
      this.acquire(byName);
      if (previous) this.release(previous);
    }
    for (const [t, previous] of old.resources) {
      if (next.has(t)) continue;
      changed = true;
      this.release(previous);
    }
    return changed;
  }

  private makeView(nodeId: string, resources: Map<XdsTypeUrl, TypeMap>, inputs?: readonly EncodedResource[]): ProxyView {
    const byIndex = allTypeUrls.map((t) => resources.get(t));
    return Object.freeze({ nodeId, revision: ++this.revisionCounter, publishedAt: performance.now(), resources, byIndex, inputs });
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

  private acquire(byName: TypeMap): void {
    for (const entry of byName.values()) entry.users++;
  }

  private release(byName: ReadonlyMap<string, CacheEntry>): void {
    for (const entry of byName.values()) if (--entry.users === 0) this.unpool(entry);
  }

  private unpool(entry: CacheEntry): void {
    const versions = this.pool.get(entry.typeUrl);
    if (versions?.get(entry.version) !== entry) return;
    versions.delete(entry.version);
    this.entries--;
  }

  private notify(nodeId: string, view: ProxyView): void {
    for (const listener of this.listeners.get(nodeId) ?? []) listener(view);
  }
}

function duplicate(r: EncodedResource): string {
  return `duplicate ${shortName[r.typeUrl]} resource "${r.name}"`;
}

function sameEntries(a: ReadonlyMap<string, CacheEntry>, b: ReadonlyMap<string, CacheEntry>): boolean {
  if (a.size !== b.size) return false;
  for (const [name, entry] of a) if (b.get(name) !== entry) return false;
  return true;
}
