import { allTypeUrls, typeIndex, type XdsTypeUrl } from '../types.js';
import type { EncodedResource } from './entry.js';
import { TypeEntries } from './type-entries.js';

/** A view's entries of each type, by type index (`allTypeUrls` order); undefined for none. */
export type TypeMaps = readonly (TypeEntries | undefined)[];

/**
 * What one proxy should have: per type, its entries. Immutable once published; `revision`
 * increases with every publish for the proxy, `publishedAt` (ms, monotonic clock) feeds the
 * convergence metric.
 */
export interface ProxyView {
  readonly nodeId: string;
  readonly revision: number;
  readonly publishedAt: number;
  readonly resources: ReadonlyMap<XdsTypeUrl, TypeEntries>;
  /** The entries by type index, for the push path. */
  readonly byIndex: TypeMaps;
  /** What `setProxyResources` was given for this view (its next call compares against it). */
  readonly inputs?: readonly EncodedResource[] | undefined;
}

/** A published view: immutable through its types (not frozen: `resources` is built on demand). */
export class PublishedView implements ProxyView {
  private byType: ReadonlyMap<XdsTypeUrl, TypeEntries> | undefined;

  constructor(
    readonly nodeId: string,
    readonly revision: number,
    readonly publishedAt: number,
    readonly byIndex: TypeMaps,
    readonly inputs?: readonly EncodedResource[],
  ) {
    if (byIndex.length !== allTypeUrls.length)
      throw new Error(`a view has ${allTypeUrls.length} type slots, not ${byIndex.length}`);
  }

  get resources(): ReadonlyMap<XdsTypeUrl, TypeEntries> {
    if (!this.byType) {
      const byType = new Map<XdsTypeUrl, TypeEntries>();
      allTypeUrls.forEach((t, i) => {
        const entries = this.byIndex[i];
        if (entries) byType.set(t, entries);
      });
      this.byType = byType;
    }
    return this.byType;
  }
}

export function entriesOf(view: ProxyView | undefined, typeUrl: XdsTypeUrl): TypeEntries {
  return view?.byIndex[typeIndex(typeUrl)] ?? TypeEntries.empty;
}

/** `entriesOf` by type index (see PushStep.index). */
export function entriesAt(view: ProxyView | undefined, index: number): TypeEntries {
  return view?.byIndex[index] ?? TypeEntries.empty;
}

/** Every reference of every resource in the view resolves inside the view; errors otherwise. */
export function checkConsistency(maps: TypeMaps): string[] {
  const errors: string[] = [];
  for (let i = 0; i < maps.length; i++) maps[i]?.checkReferences(i, maps, errors);
  return errors;
}
