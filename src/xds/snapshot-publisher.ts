import { IsthmusError } from '../errors.js';
import type { SnapshotSink } from '../snapshot/manager.js';
import type { ConfigSnapshot } from '../snapshot/types.js';
import type { EncodedResource } from './cache/entry.js';
import { entriesOf } from './cache/proxy-view.js';
import type { XdsCache } from './cache/xds-cache.js';
import { ResourceEncoder } from './resources/index.js';
import { type ResourcePiece, resourcePieces } from './resources/pieces.js';
import { shortName, type XdsTypeUrl } from './types.js';

/** One piece's resources as published, and the encoder memo keys they hold. */
interface Generated {
  readonly of: object;
  readonly resources: readonly EncodedResource[];
  readonly keys: readonly string[];
  /** The publish that last used it (see `publish`). */
  seenIn: number;
}

/**
 * Publishes built snapshots to the xDS cache (docs/architecture.md §2 "Incremental builds"). A
 * snapshot is cut into pieces (`resourcePieces`); a piece whose snapshot object is the one
 * published before keeps its encoded resources, the others are generated (only resources not seen
 * before are built and encoded), and the proxy's view is updated with the resources that differ:
 * one endpoint move upserts one ClusterLoadAssignment. The first publish sets the view whole. The
 * snapshot layer reaches it only through `SnapshotSink`, so snapshot/ never imports xds/ (§12).
 */
export class SnapshotPublisher implements SnapshotSink {
  private readonly encoder: ResourceEncoder;
  /** Per proxy, its pieces as last published, in snapshot order. */
  private readonly published = new Map<string, readonly Generated[]>();
  private pass = 0;

  constructor(private readonly cache: XdsCache) {
    this.encoder = new ResourceEncoder(cache);
  }

  publish(proxyId: string, snapshot: ConfigSnapshot): void {
    const pass = ++this.pass;
    const before = this.cache.view(proxyId) ? this.published.get(proxyId) : undefined;
    const fresh: Generated[] = [];
    let byOf: Map<object, Generated> | undefined;
    const now = resourcePieces(snapshot).map((p, i) => {
      let g = before?.[i]?.of === p.of ? before[i] : undefined;
      if (!g && before) g = (byOf ??= new Map(before.map((b) => [b.of, b]))).get(p.of);
      if (!g) fresh.push((g = this.generate(p)));
      g.seenIn = pass;
      return g;
    });
    const gone = before?.filter((g) => g.seenIn !== pass) ?? [];
    try {
      if (!before)
        this.cache.setProxyResources(
          proxyId,
          now.flatMap((g) => g.resources),
        );
      else if (fresh.length > 0 || gone.length > 0) this.update(proxyId, fresh, gone);
    } catch (err) {
      for (const g of fresh) this.encoder.releaseKeys(g.keys);
      throw err;
    }
    for (const g of gone) this.encoder.releaseKeys(g.keys);
    if (!before)
      for (const g of this.published.get(proxyId) ?? []) this.encoder.releaseKeys(g.keys);
    this.published.set(proxyId, now);
  }

  remove(proxyId: string): void {
    for (const g of this.published.get(proxyId) ?? []) this.encoder.releaseKeys(g.keys);
    this.published.delete(proxyId);
    this.cache.removeProxy(proxyId);
  }

  private generate(piece: ResourcePiece): Generated {
    const taken = piece.specs().map((s) => this.encoder.acquire(s));
    return {
      of: piece.of,
      resources: taken.map((t) => t.encoded),
      keys: taken.map((t) => t.key),
      seenIn: 0,
    };
  }

  /**
   * Upserts the resources of the fresh pieces that differ from the view and removes those of the
   * gone pieces that no fresh one replaced. A name held twice is refused as the full path refuses
   * it (XdsCache.setProxyResources), so both paths publish the same views.
   */
  private update(proxyId: string, fresh: readonly Generated[], gone: readonly Generated[]): void {
    const view = this.cache.view(proxyId);
    const removed = new Set<string>();
    for (const g of gone) for (const r of g.resources) removed.add(nameKey(r.typeUrl, r.name));
    const claimed = new Set<string>();
    const upsert: EncodedResource[] = [];
    for (const g of fresh) {
      for (const r of g.resources) {
        const key = nameKey(r.typeUrl, r.name);
        const held = entriesOf(view, r.typeUrl).get(r.name);
        if (claimed.has(key) || (held && !removed.has(key))) throw duplicate(proxyId, r);
        claimed.add(key);
        removed.delete(key);
        if (held?.version !== r.version) upsert.push(r);
      }
    }
    const remove = [...removed].map(parseNameKey);
    if (upsert.length > 0 || remove.length > 0)
      this.cache.updateProxyResources(proxyId, { upsert, remove });
  }
}

const nameKey = (typeUrl: XdsTypeUrl, name: string) => `${typeUrl}\n${name}`;

function parseNameKey(key: string): { typeUrl: XdsTypeUrl; name: string } {
  const at = key.indexOf('\n');
  return { typeUrl: key.slice(0, at) as XdsTypeUrl, name: key.slice(at + 1) };
}

function duplicate(proxyId: string, r: EncodedResource): IsthmusError {
  return new IsthmusError(
    'failed_precondition',
    `inconsistent xDS view for proxy "${proxyId}": duplicate ${shortName[r.typeUrl]} resource "${r.name}"`,
  );
}
