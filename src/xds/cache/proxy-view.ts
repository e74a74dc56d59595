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

/** Every reference of every resource in the view resolves inside the view; errors otherwise. */
export function checkConsistency(resources: ProxyView['resources']): string[] {
  const errors: string[] = [];
  for (const [typeUrl, byName] of resources) {
    for (const entry of byName.values()) {
      for (const ref of entry.refs) {
        if (!resources.get(ref.typeUrl)?.has(ref.name)) {
          errors.push(`${shortTypeName(typeUrl)} "${entry.name}" references ${shortTypeName(ref.typeUrl)} "${ref.name}", which is not in the view`);
        }
      }
    }
  }
  return errors;
}

function shortTypeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}
