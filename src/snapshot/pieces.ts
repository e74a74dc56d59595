/**
 * What changed since a proxy's last build (docs/architecture.md §2 "Incremental builds"): `all`,
 * or the catalog keys the manager saw change: service names, `config:<kind>/<name>` of routers and
 * splitters, and `importedServiceKey` of a peer's imports. Every other kind of change is `all`.
 */
export type Changes = 'all' | ReadonlySet<string>;

/**
 * The key of a change to `service` as imported from `peer`: `peer:<peer>/<service>`, or
 * `peer:<peer>/*` when the change does not say which service (`service` left out).
 */
export const importedServiceKey = (peer: string, service = '*') => `peer:${peer}/${service}`;

/**
 * What is built from `service` as imported from any of `peers` depends on: a change to that
 * service, and a change that does not say which (`peerDeps`, a gateway's imported parts).
 */
export function importDeps(peers: readonly string[], service: string): string[] {
  return peers.flatMap((peer) => [importedServiceKey(peer, service), importedServiceKey(peer)]);
}

/** `[peer, service]` of a `peer:<peer>/<service>` key (`service` may be `*`), else undefined. */
export function parseImportedServiceKey(key: string): [string, string] | undefined {
  if (!key.startsWith('peer:')) return undefined;
  const slash = key.indexOf('/');
  return slash < 0 ? undefined : [key.slice(5, slash), key.slice(slash + 1)];
}

/** Merges two batches of changes (`all` absorbs everything). */
export function mergeChanges(a: Changes | undefined, b: Changes): Changes {
  if (a === undefined) return b;
  if (a === 'all' || b === 'all') return 'all';
  return new Set([...a, ...b]);
}

/** A built piece of a snapshot and the catalog keys whose change makes it stale. */
export interface Piece<T> {
  readonly value: T;
  readonly deps: Iterable<string>;
}

/**
 * The pieces of one proxy's snapshot by id, with an index from each catalog key to the pieces
 * built from it. `invalidate` drops the pieces a change touches; `get` builds a piece only when
 * it is not held. A piece kept is the very object built before, so everything derived from it
 * downstream (its resources, their bytes and versions) can be reused by identity.
 */
export class PieceMemo<T> {
  private readonly pieces = new Map<string, Piece<T>>();
  private readonly byDep = new Map<string, Set<string>>();

  get(id: string, build: () => Piece<T>): T {
    const held = this.pieces.get(id);
    if (held) return held.value;
    const piece = build();
    this.pieces.set(id, piece);
    for (const dep of piece.deps) {
      let ids = this.byDep.get(dep);
      if (!ids) this.byDep.set(dep, (ids = new Set()));
      ids.add(id);
    }
    return piece.value;
  }

  /** Whether a piece with this id is held. */
  has(id: string): boolean {
    return this.pieces.has(id);
  }

  /** The keys a held piece was built from (none when it is not held). */
  depsOf(id: string): Iterable<string> {
    return this.pieces.get(id)?.deps ?? [];
  }

  /**
   * Drops every piece built from one of `keys`; returns what they held, by id, so a builder can
   * patch its last snapshot where each stood instead of assembling the whole again.
   */
  invalidate(keys: Iterable<string>): Map<string, Piece<T>> {
    const dropped = new Map<string, Piece<T>>();
    for (const key of keys) {
      for (const id of [...(this.byDep.get(key) ?? [])]) {
        const piece = this.pieces.get(id);
        if (piece) dropped.set(id, piece);
        this.drop(id);
      }
    }
    return dropped;
  }

  /** Drops the pieces whose id is not in `ids` (a piece no longer part of the snapshot). */
  retain(ids: ReadonlySet<string>): void {
    for (const id of [...this.pieces.keys()]) if (!ids.has(id)) this.drop(id);
  }

  clear(): void {
    this.pieces.clear();
    this.byDep.clear();
  }

  private drop(id: string): void {
    const piece = this.pieces.get(id);
    if (!piece) return;
    this.pieces.delete(id);
    for (const dep of piece.deps) {
      const ids = this.byDep.get(dep);
      ids?.delete(id);
      if (ids?.size === 0) this.byDep.delete(dep);
    }
  }
}

/**
 * `next`, or `previous` when it is equal (snapshot values are plain JSON-able data): a part rebuilt
 * to the same value stays the same object, so nothing downstream of it is generated again.
 */
export function reuse<T>(previous: T | undefined, next: T): T {
  return previous !== undefined && JSON.stringify(previous) === JSON.stringify(next)
    ? previous
    : next;
}

/** The position of the item whose key is `key` in `sorted` (ascending by that key), or -1. */
export function indexOfSorted<T>(
  sorted: readonly T[],
  key: string,
  keyOf: (item: T) => string,
): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const at = keyOf(sorted[mid]!);
    if (at === key) return mid;
    if (at < key) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Whether two dependency lists name the same keys. */
export function sameDeps(a: Iterable<string>, b: Iterable<string>): boolean {
  const left = new Set(a);
  const right = [...new Set(b)];
  return left.size === right.length && right.every((k) => left.has(k));
}
