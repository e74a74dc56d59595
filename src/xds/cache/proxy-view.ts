import { allTypeUrls, typeIndex, type XdsTypeUrl } from '../types.js';
import { byName, type CacheEntry, type EncodedResource } from './entry.js';

/**
 * What one proxy should have: per type, name → shared cache entry. Immutable once published;
 * `revision` increases with every publish for the proxy, `publishedAt` (ms, monotonic clock) feeds
 * the convergence metric.
 */
export interface ProxyView {
  readonly nodeId: string;
  readonly revision: number;
  readonly publishedAt: number;
  readonly resources: ReadonlyMap<XdsTypeUrl, ReadonlyMap<string, CacheEntry>>;
  /** The same Maps by type index (`allTypeUrls` order). */
  readonly byIndex: readonly (ReadonlyMap<string, CacheEntry> | undefined)[];
  /** `byIndex[index]`, for the push path (no array to read). */
  mapAt(index: number): ReadonlyMap<string, CacheEntry> | undefined;
  /** What `setProxyResources` was given for this view (its next call compares against it). */
  readonly inputs?: readonly EncodedResource[] | undefined;
}

type TypeMap = ReadonlyMap<string, CacheEntry>;

// A view keeps one Map per ADS type in fields m0..m4 (see mapAt).
if (allTypeUrls.length !== 5)
  throw new Error(`PublishedView keeps 5 type Maps, and there are ${allTypeUrls.length} ADS types`);

/** A type's Maps by type index, as `ProxyView.byIndex`. */
export type TypeMaps = readonly (ReadonlyMap<string, CacheEntry> | undefined)[];

/**
 * A published view. Its Maps are fields, read by type index through `mapAt`: a publish to
 * thousands of proxies reads each one's previous view, and an array beside it would be one more
 * object to fetch per proxy. `byIndex` builds the array each time it is read, and `resources` the
 * Map by type URL the first time; the push path reads neither. Immutable through its types (not
 * frozen: `resources` is built on demand).
 */
export class PublishedView implements ProxyView {
  private readonly m0: TypeMap | undefined;
  private readonly m1: TypeMap | undefined;
  private readonly m2: TypeMap | undefined;
  private readonly m3: TypeMap | undefined;
  private readonly m4: TypeMap | undefined;
  private byType: ReadonlyMap<XdsTypeUrl, TypeMap> | undefined;

  constructor(
    readonly nodeId: string,
    readonly revision: number,
    readonly publishedAt: number,
    maps: TypeMaps,
    readonly inputs?: readonly EncodedResource[],
  ) {
    if (maps.length !== allTypeUrls.length)
      throw new Error(`a view has ${allTypeUrls.length} type slots, not ${maps.length}`);
    this.m0 = maps[0];
    this.m1 = maps[1];
    this.m2 = maps[2];
    this.m3 = maps[3];
    this.m4 = maps[4];
  }

  mapAt(index: number): TypeMap | undefined {
    switch (index) {
      case 0:
        return this.m0;
      case 1:
        return this.m1;
      case 2:
        return this.m2;
      case 3:
        return this.m3;
      case 4:
        return this.m4;
    }
    return undefined;
  }

  get byIndex(): TypeMaps {
    return allTypeUrls.map((_, i) => this.mapAt(i));
  }

  get resources(): ReadonlyMap<XdsTypeUrl, TypeMap> {
    if (!this.byType) {
      const byType = new Map<XdsTypeUrl, TypeMap>();
      allTypeUrls.forEach((t, i) => {
        const entries = this.mapAt(i);
        if (entries) byType.set(t, entries);
      });
      this.byType = byType;
    }
    return this.byType;
  }
}

const emptyMap: ReadonlyMap<string, CacheEntry> = new Map();

export function entriesOf(
  view: ProxyView | undefined,
  typeUrl: XdsTypeUrl,
): ReadonlyMap<string, CacheEntry> {
  return view?.mapAt(typeIndex(typeUrl)) ?? emptyMap;
}

/** `entriesOf` by type index (see PushStep.index). */
export function entriesAt(
  view: ProxyView | undefined,
  index: number,
): ReadonlyMap<string, CacheEntry> {
  return view?.mapAt(index) ?? emptyMap;
}

/** Published views never mutate a type's Map, so its sorted entries are computed once per Map. */
const sortedCache = new WeakMap<TypeMap, readonly CacheEntry[]>();

/** The entries of a published type Map sorted by name (shared: do not mutate). */
export function sortedEntries(entries: TypeMap): readonly CacheEntry[] {
  let sorted = sortedCache.get(entries);
  if (!sorted) {
    sorted = [...entries.values()].sort(byName);
    sortedCache.set(entries, sorted);
  }
  return sorted;
}

/**
 * A type Map found consistent, with the Maps of the types its references point into at the time
 * (by type index). Published Maps never mutate (views share them), so the same Maps are
 * consistent again.
 */
const verified = new WeakMap<TypeMap, TypeMaps>();

function stillVerified(byName: TypeMap, maps: TypeMaps): boolean {
  const targets = verified.get(byName);
  if (!targets) return false;
  for (let i = 0; i < targets.length; i++)
    if (targets[i] !== undefined && maps[i] !== targets[i]) return false;
  return true;
}

/**
 * Every reference of every resource in the view resolves inside the view; errors otherwise.
 * `maps` (by type index) must hold only Maps that are no longer mutated.
 */
export function checkConsistency(maps: TypeMaps): string[] {
  const errors: string[] = [];
  for (let i = 0; i < maps.length; i++) {
    const byName = maps[i];
    if (!byName || stillVerified(byName, maps)) continue;
    // Found consistent only if every reference resolved, so each referenced type has its Map here.
    const targets: (TypeMap | undefined)[] = [];
    const before = errors.length;
    for (const entry of byName.values()) {
      for (const ref of entry.refs) {
        const t = typeIndex(ref.typeUrl);
        const target = maps[t];
        targets[t] = target;
        if (!target?.has(ref.name)) {
          errors.push(
            `${shortTypeName(allTypeUrls[i]!)} "${entry.name}" references ${shortTypeName(ref.typeUrl)} "${ref.name}", which is not in the view`,
          );
        }
      }
    }
    if (errors.length === before) verified.set(byName, targets);
  }
  return errors;
}

/**
 * A type Map published as a change of another Map with exactly the same names (new endpoints for
 * the same clusters, say): the entries that differ, sorted by name. Streams that had nothing left
 * to send against `from` plan against `changed` alone, so a push costs what changed, not what the
 * proxy holds.
 */
interface Derivation {
  /** Weak: a chain of Maps, each derived from the one before, must not keep all of them alive. */
  readonly from: WeakRef<TypeMap>;
  readonly changed: readonly CacheEntry[];
}

const derivations = new WeakMap<TypeMap, Derivation>();

/** The entries of `entries` that differ from `from`, if `entries` was published as a change of it. */
export function changedSince(
  entries: TypeMap,
  from: TypeMap | undefined,
): readonly CacheEntry[] | undefined {
  const d = derivations.get(entries);
  return from && d?.from.deref() === from ? d.changed : undefined;
}

/** Records `next` as a change of `from` when both have the same names (published Maps only). */
export function recordDerivation(next: TypeMap, from: TypeMap): void {
  if (next.size !== from.size || next === from) return;
  const changed: CacheEntry[] = [];
  for (const [name, entry] of next) {
    const before = from.get(name);
    if (!before) return;
    if (before !== entry) changed.push(entry);
  }
  changed.sort(byName);
  derivations.set(next, { from: new WeakRef(from), changed });
}

function shortTypeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}
