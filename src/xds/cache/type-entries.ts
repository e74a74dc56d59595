import { createHash } from 'node:crypto';
import { allTypeUrls, typeIndex } from '../types.js';
import { byName, type CacheEntry } from './entry.js';

/**
 * version_info of a SotW state: a content hash of its (name, version) pairs, stable everywhere.
 */
export function stateVersion(entries: readonly CacheEntry[]): string {
  const h = createHash('sha256');
  for (const e of entries) h.update(e.name).update('\0').update(e.version).update('\n');
  return h.digest('base64url').slice(0, 22);
}

/**
 * Changes laid over entries already published: `null` marks a removed name. A publish that
 * upserts one entry among 10,000 stores that one, not a copy of the 10,000 (issue 14).
 */
export interface Layer {
  readonly below: EntriesStore;
  readonly changes: ReadonlyMap<string, CacheEntry | null>;
  readonly depth: number;
}

export type EntriesStore = ReadonlyMap<string, CacheEntry> | Layer;

/**
 * Layers a store may have before it is flattened into one Map: a lookup reads at most this many
 * small Maps, and a flatten (a copy of every entry) happens once per this many changes.
 */
const maxDepth = 32;

const isLayer = (store: EntriesStore): store is Layer => !(store instanceof Map);

function lookup(store: EntriesStore, name: string): CacheEntry | undefined {
  let at = store;
  while (isLayer(at)) {
    const entry = at.changes.get(name);
    if (entry !== undefined) return entry ?? undefined;
    at = at.below;
  }
  return at.get(name);
}

/** One Map with the entries of every layer, in the order a copied and updated Map would have. */
function flatten(store: EntriesStore): ReadonlyMap<string, CacheEntry> {
  if (!isLayer(store)) return store;
  const layers: Layer[] = [];
  let at: EntriesStore = store;
  for (; isLayer(at); at = at.below) layers.push(at);
  const flat = new Map(at);
  for (let i = layers.length - 1; i >= 0; i--) {
    for (const [name, entry] of layers[i]!.changes) {
      if (entry) flat.set(name, entry);
      else flat.delete(name);
    }
  }
  return flat;
}

/**
 * A type's entries being built for a publish: a Map of its own, or changes over the entries the
 * view holds (`base`), so an update costs what it changes. Only the cache makes one, and a
 * TypeEntries takes it over.
 */
export class EntriesDraft {
  private readonly changes = new Map<string, CacheEntry | null>();
  private count: number;

  constructor(readonly base?: TypeEntries) {
    this.count = base?.size ?? 0;
  }

  get size(): number {
    return this.count;
  }

  get(name: string): CacheEntry | undefined {
    const entry = this.changes.get(name);
    return entry === undefined ? this.base?.get(name) : (entry ?? undefined);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  set(name: string, entry: CacheEntry): void {
    if (!this.has(name)) this.count++;
    this.changes.set(name, entry);
  }

  delete(name: string): boolean {
    if (!this.has(name)) return false;
    this.count--;
    if (this.base?.has(name)) this.changes.set(name, null);
    else this.changes.delete(name);
    return true;
  }

  /** The store a TypeEntries reads: the changes alone when there is no base. */
  store(): EntriesStore {
    if (!this.base) return this.changes as ReadonlyMap<string, CacheEntry>;
    const below = this.base.store;
    const layer: Layer = {
      below,
      changes: this.changes,
      depth: isLayer(below) ? below.depth + 1 : 1,
    };
    return layer.depth > maxDepth ? flatten(layer) : layer;
  }
}

/**
 * One type's entries in a published view, name → shared cache entry: an immutable value. Views of
 * many proxies share one when their entries of the type are equal (see XdsCache.shared), so what
 * the push path derives from it is computed once for all of them and kept here, with the value it
 * was derived from. Nothing here is ever invalidated: the entries never change, and a change is a
 * new TypeEntries. It reads as a ReadonlyMap, and only the cache makes one.
 */
export class TypeEntries implements ReadonlyMap<string, CacheEntry> {
  static readonly empty = new TypeEntries(new Map());

  /** The entries: one Map, or layers of changes over earlier entries (see EntriesDraft). */
  private stored: EntriesStore;
  private readonly count: number;
  private sortedMemo: readonly CacheEntry[] | undefined;
  private versionMemo: string | undefined;
  /** The entries of the other types (by type index) every reference of these resolved in. */
  private verifiedWith: readonly (TypeEntries | undefined)[] | undefined;
  /**
   * Set when these entries were published as a change of `from`, with exactly its names (new
   * endpoints for the same clusters, say): the entries that differ, sorted by name. Weak: a chain
   * of values, each derived from the one before, must not keep all of them alive.
   */
  private readonly derivation:
    | { readonly from: WeakRef<TypeEntries>; readonly changed: readonly CacheEntry[] }
    | undefined;

  /**
   * Takes `entries` over: the caller built it for this value and keeps no other reference to it.
   * With `previous`, the view's entries of the type before, records what changed (see
   * changedSince). `changed`, when the caller knows it (the entries that differ from `previous`,
   * whose names are exactly `entries`' names), saves comparing every entry.
   */
  constructor(
    entries: Map<string, CacheEntry> | EntriesDraft,
    previous?: TypeEntries,
    changed?: readonly CacheEntry[],
  ) {
    this.stored = entries instanceof EntriesDraft ? entries.store() : entries;
    this.count = entries.size;
    this.derivation =
      previous &&
      (changed
        ? { from: new WeakRef(previous), changed: [...changed].sort(byName) }
        : derive(this, previous));
  }

  /** What these entries are stored as (an EntriesDraft over them layers its changes on it). */
  get store(): EntriesStore {
    return this.stored;
  }

  /** The entries as one Map, flattened once when they are read whole. */
  private get byName(): ReadonlyMap<string, CacheEntry> {
    if (isLayer(this.stored)) this.stored = flatten(this.stored);
    return this.stored as ReadonlyMap<string, CacheEntry>;
  }

  /** Whether these entries have exactly the names of `other` (same object, or derived from it). */
  sameNamesAs(other: TypeEntries | undefined): boolean {
    return other === this || (other !== undefined && this.derivation?.from.deref() === other);
  }

  get size(): number {
    return this.count;
  }

  get(name: string): CacheEntry | undefined {
    return lookup(this.stored, name);
  }

  has(name: string): boolean {
    return lookup(this.stored, name) !== undefined;
  }

  keys(): MapIterator<string> {
    return this.byName.keys();
  }

  values(): MapIterator<CacheEntry> {
    return this.byName.values();
  }

  entries(): MapIterator<[string, CacheEntry]> {
    return this.byName.entries();
  }

  [Symbol.iterator](): MapIterator<[string, CacheEntry]> {
    return this.byName.entries();
  }

  forEach(
    fn: (value: CacheEntry, key: string, map: ReadonlyMap<string, CacheEntry>) => void,
    thisArg?: unknown,
  ): void {
    for (const [name, entry] of this.byName) fn.call(thisArg, entry, name, this);
  }

  /** The entries sorted by name: one frozen array, shared by every stream that sends them all. */
  get sorted(): readonly CacheEntry[] {
    if (this.sortedMemo === undefined)
      this.sortedMemo = Object.freeze([...this.byName.values()].sort(byName));
    return this.sortedMemo;
  }

  /** `stateVersion(this.sorted)`, hashed once. */
  get version(): string {
    if (this.versionMemo === undefined) this.versionMemo = stateVersion(this.sorted);
    return this.versionMemo;
  }

  /** SotW version_info of `state`, either these sorted entries or a state of its own. */
  versionOf(state: readonly CacheEntry[]): string {
    return state === this.sortedMemo ? this.version : stateVersion(state);
  }

  /**
   * The entries that differ from `from`, sorted by name, if these were published as a change of it
   * (same names); undefined otherwise. Streams that had nothing left to send against `from` plan
   * against these alone, so a push costs what changed, not what the proxy holds.
   */
  changedSince(from: TypeEntries | undefined): readonly CacheEntry[] | undefined {
    const d = this.derivation;
    if (from === undefined || d === undefined || d.from.deref() !== from) return undefined;
    return d.changed;
  }

  /**
   * Adds to `errors` every reference of these entries (of type `index`) that does not resolve in
   * `maps`, the view's entries by type index. Once found consistent with some entries of the
   * referenced types, the same entries are not checked again.
   */
  checkReferences(
    index: number,
    maps: readonly (TypeEntries | undefined)[],
    errors: string[],
  ): void {
    // A reference resolves by name, so targets with the same names as the verified ones resolve it.
    if (this.verifiedWith && sameTargets(this.verifiedWith, maps)) {
      // Entries shared by thousands of views are checked once per publish to each: the record
      // moves to the targets' newest values only when one is new (no array per proxy and push).
      if (!identicalTargets(this.verifiedWith, maps))
        this.verifiedWith = this.verifiedWith.map((t, i) => t && maps[i]);
      return;
    }
    // Derived from verified entries, with targets of the same names: only what changed is new.
    const from = this.derivation?.from.deref();
    const fromVerified = from?.verifiedWith && sameTargets(from.verifiedWith, maps);
    const checked = fromVerified ? this.derivation!.changed : this.byName.values();
    const before = errors.length;
    const targets: (TypeEntries | undefined)[] = fromVerified
      ? from!.verifiedWith!.map((t, i) => t && maps[i])
      : [];
    for (const entry of checked) {
      for (const ref of entry.refs) {
        const t = typeIndex(ref.typeUrl);
        const target = maps[t];
        targets[t] = target;
        if (!target?.has(ref.name)) {
          errors.push(
            `${shortTypeName(allTypeUrls[index] ?? '')} "${entry.name}" references ${shortTypeName(ref.typeUrl)} "${ref.name}", which is not in the view`,
          );
        }
      }
    }
    if (errors.length === before) this.verifiedWith = targets;
  }
}

/** Every entries `verified` holds has the names of the one `maps` holds at its index. */
function sameTargets(
  verified: readonly (TypeEntries | undefined)[],
  maps: readonly (TypeEntries | undefined)[],
): boolean {
  for (let i = 0; i < verified.length; i++) {
    const v = verified[i];
    if (v !== undefined && !maps[i]?.sameNamesAs(v)) return false;
  }
  return true;
}

/** Every target recorded is the very value `maps` holds at its index. */
function identicalTargets(
  verified: readonly (TypeEntries | undefined)[],
  maps: readonly (TypeEntries | undefined)[],
): boolean {
  for (let i = 0; i < verified.length; i++) {
    const v = verified[i];
    if (v !== undefined && maps[i] !== v) return false;
  }
  return true;
}

function derive(
  next: ReadonlyMap<string, CacheEntry>,
  from: TypeEntries,
): { from: WeakRef<TypeEntries>; changed: readonly CacheEntry[] } | undefined {
  if (next.size !== from.size) return undefined;
  const changed: CacheEntry[] = [];
  for (const [name, entry] of next) {
    const before = from.get(name);
    if (!before) return undefined;
    if (before !== entry) changed.push(entry);
  }
  return { from: new WeakRef(from), changed: changed.sort(byName) };
}

function shortTypeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}
