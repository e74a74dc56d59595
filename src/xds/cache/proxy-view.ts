import type { XdsTypeUrl } from '../types.js';
import type { CacheEntry } from './entry.js';

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
}

const emptyMap: ReadonlyMap<string, CacheEntry> = new Map();

export function entriesOf(view: ProxyView | undefined, typeUrl: XdsTypeUrl): ReadonlyMap<string, CacheEntry> {
  return view?.resources.get(typeUrl) ?? emptyMap;
}

type TypeMap = ReadonlyMap<string, CacheEntry>;

/**
 * A type Map found consistent, with the Maps of the types its references point into at the time.
 * Published Maps never mutate (views share them), so the same Maps are consistent again.
 */
const verified = new WeakMap<TypeMap, ReadonlyMap<XdsTypeUrl, TypeMap | undefined>>();

function stillVerified(byName: TypeMap, resources: ProxyView['resources']): boolean {
  const targets = verified.get(byName);
  if (!targets) return false;
  for (const [t, target] of targets) if (resources.get(t) !== target) return false;
  return true;
}

/**
 * Every reference of every resource in the view resolves inside the view; errors otherwise.
 * `resources` must hold only Maps that are no longer mutated.
 */
export function checkConsistency(resources: ProxyView['resources']): string[] {
  const errors: string[] = [];
  for (const [typeUrl, byName] of resources) {
    if (stillVerified(byName, resources)) continue;
    const targets = new Map<XdsTypeUrl, TypeMap | undefined>();
    const before = errors.length;
    for (const entry of byName.values()) {
      for (const ref of entry.refs) {
        const target = resources.get(ref.typeUrl);
        targets.set(ref.typeUrl, target);
        if (!target?.has(ref.name)) {
          errors.push(`${shortTypeName(typeUrl)} "${entry.name}" references ${shortTypeName(ref.typeUrl)} "${ref.name}", which is not in the view`);
        }
      }
    }
    if (errors.length === before) verified.set(byName, targets);
  }
  return errors;
}

function shortTypeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}
