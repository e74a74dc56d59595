import type { ConfigSnapshot } from '../../snapshot/types.js';
import type { EncodedResource } from '../cache/entry.js';
import type { XdsCache } from '../cache/xds-cache.js';
import { clustersFromSnapshot } from './clusters.js';
import type { ResourceSpec } from './common.js';
import { endpointsFromSnapshot } from './endpoints.js';
import { listenersFromSnapshot } from './listeners.js';
import { routesFromSnapshot } from './routes.js';
import { secretsFromSnapshot } from './secrets.js';

export type { ResourceSpec } from './common.js';

/** Every resource of a proxy, in a deterministic order (sorted by type, then name). */
export function resourcesFromSnapshot(s: ConfigSnapshot): ResourceSpec[] {
  return [
    ...secretsFromSnapshot(s),
    ...clustersFromSnapshot(s),
    ...endpointsFromSnapshot(s),
    ...listenersFromSnapshot(s),
    ...routesFromSnapshot(s),
  ].sort((a, b) => (a.typeUrl === b.typeUrl ? cmp(a.name, b.name) : cmp(a.typeUrl, b.typeUrl)));
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Builds and encodes each distinct resource once: specs with an equal (type, name, key) share
 * one EncodedResource across proxies and rebuilds. Entries live while some proxy uses them.
 */
export class ResourceEncoder {
  private readonly memo = new Map<string, { encoded: EncodedResource; users: number }>();
  private readonly byProxy = new Map<string, readonly string[]>();

  constructor(private readonly cache: XdsCache) {}

  encodeFor(proxyId: string, specs: readonly ResourceSpec[]): EncodedResource[] {
    const keys = specs.map((s) => `${s.typeUrl}\n${s.name}\n${s.key}`);
    const out = specs.map((s, i) => {
      const key = keys[i]!;
      let hit = this.memo.get(key);
      if (!hit) this.memo.set(key, (hit = { encoded: this.cache.encode(s.build()), users: 0 }));
      return hit.encoded;
    });
    for (const key of keys) this.memo.get(key)!.users++;
    this.release(proxyId);
    this.byProxy.set(proxyId, keys);
    return out;
  }

  /** Forgets what the proxy used (it was deregistered or rebuilt). */
  release(proxyId: string): void {
    for (const key of this.byProxy.get(proxyId) ?? []) {
      const hit = this.memo.get(key);
      if (hit && --hit.users <= 0) this.memo.delete(key);
    }
    this.byProxy.delete(proxyId);
  }

  get size(): number {
    return this.memo.size;
  }
}
