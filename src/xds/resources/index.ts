import type { ConfigSnapshot } from '../../snapshot/types.js';
import type { EncodedResource } from '../cache/entry.js';
import type { XdsCache } from '../cache/xds-cache.js';
import type { ResourceSpec } from './common.js';
import { pieceGroups } from './pieces.js';

export type { ResourceSpec } from './common.js';

/** Every resource of a proxy, in a deterministic order (sorted by type, then name). */
export function resourcesFromSnapshot(s: ConfigSnapshot): ResourceSpec[] {
  return pieceGroups(s)
    .flatMap((g) => g.parts.flatMap((p) => g.specs(p)))
    .sort((a, b) => (a.typeUrl === b.typeUrl ? cmp(a.name, b.name) : cmp(a.typeUrl, b.typeUrl)));
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Builds and encodes each distinct resource once: specs with an equal (type, name, key) share
 * one EncodedResource across proxies and rebuilds. An entry lives while someone holds its key.
 */
export class ResourceEncoder {
  private readonly memo = new Map<string, { encoded: EncodedResource; users: number }>();
  private readonly byProxy = new Map<string, readonly string[]>();

  constructor(private readonly cache: XdsCache) {}

  /** The spec's resource, built and encoded unless held; hold it until `releaseKeys([key])`. */
  acquire(s: ResourceSpec): { key: string; encoded: EncodedResource } {
    const key = `${s.typeUrl}\n${s.name}\n${s.key}`;
    let hit = this.memo.get(key);
    if (!hit) this.memo.set(key, (hit = { encoded: this.cache.encode(s.build()), users: 0 }));
    hit.users++;
    return { key, encoded: hit.encoded };
  }

  releaseKeys(keys: readonly string[]): void {
    for (const key of keys) {
      const hit = this.memo.get(key);
      if (hit && --hit.users <= 0) this.memo.delete(key);
    }
  }

  /** A proxy's whole set of resources, replacing what it held before. */
  encodeFor(proxyId: string, specs: readonly ResourceSpec[]): EncodedResource[] {
    const taken = specs.map((s) => this.acquire(s));
    this.release(proxyId);
    this.byProxy.set(
      proxyId,
      taken.map((t) => t.key),
    );
    return taken.map((t) => t.encoded);
  }

  /** Forgets what the proxy held through `encodeFor` (it was deregistered or rebuilt). */
  release(proxyId: string): void {
    this.releaseKeys(this.byProxy.get(proxyId) ?? []);
    this.byProxy.delete(proxyId);
  }

  get size(): number {
    return this.memo.size;
  }
}
