import { IsthmusError } from '../errors.js';
import type { SnapshotSink } from '../snapshot/manager.js';
import type { ConfigSnapshot } from '../snapshot/types.js';
import type { EncodedResource } from './cache/entry.js';
import { entriesOf } from './cache/proxy-view.js';
import type { XdsCache } from './cache/xds-cache.js';
import { ResourceEncoder } from './resources/index.js';
import { type PieceGroup, pieceGroups } from './resources/pieces.js';
import { shortName, type XdsTypeUrl } from './types.js';

/** One part's resources as published, and the encoder memo keys they hold. */
interface Generated {
  readonly resources: readonly EncodedResource[];
  readonly keys: readonly string[];
}

/** A group of parts as published: `generated[i]` is what `parts[i]` generated. */
interface PublishedGroup {
  readonly parts: readonly object[];
  readonly generated: readonly Generated[];
}

/**
 * Publishes built snapshots to the xDS cache (docs/architecture.md §2 "Incremental builds"). A
 * snapshot is cut into groups of parts (`pieceGroups`); a group whose array is the one published
 * before keeps everything, and within a group a part that is the object published before keeps its
 * encoded resources (a pointer comparison by position). Only the other parts are generated (only
 * resources not seen before are built and encoded), and the proxy's view is updated with the
 * resources that differ: one endpoint move upserts one ClusterLoadAssignment. The first publish
 * sets the view whole. The snapshot layer reaches it only through `SnapshotSink`, so snapshot/
 * never imports xds/ (§12).
 */
export class SnapshotPublisher implements SnapshotSink {
  private readonly encoder: ResourceEncoder;
  /** Per proxy, its groups as last published, in snapshot order. */
  private readonly published = new Map<string, readonly PublishedGroup[]>();

  constructor(private readonly cache: XdsCache) {
    this.encoder = new ResourceEncoder(cache);
  }

  publish(proxyId: string, snapshot: ConfigSnapshot): void {
    const before = this.cache.view(proxyId) ? this.published.get(proxyId) : undefined;
    const fresh: Generated[] = [];
    const gone: Generated[] = [];
    const now = pieceGroups(snapshot).map((g, i) => this.regroup(g, before?.[i], fresh, gone));
    try {
      if (!before)
        this.cache.setProxyResources(
          proxyId,
          now.flatMap((g) => g.generated.flatMap((x) => x.resources)),
        );
      else if (fresh.length > 0 || gone.length > 0) this.update(proxyId, fresh, gone);
    } catch (err) {
      for (const g of fresh) this.encoder.releaseKeys(g.keys);
      throw err;
    }
    for (const g of gone) this.encoder.releaseKeys(g.keys);
    if (!before) for (const g of this.published.get(proxyId) ?? []) this.releaseGroup(g);
    this.published.set(proxyId, now);
  }

  remove(proxyId: string): void {
    for (const g of this.published.get(proxyId) ?? []) this.releaseGroup(g);
    this.published.delete(proxyId);
    this.cache.removeProxy(proxyId);
  }

  /**
   * A group as published now: parts at the same position as before, and parts found among the
   * before's other parts, keep what they generated; the rest are generated (`fresh`), and what no
   * part kept is `gone`. An unchanged group costs a pointer comparison per part.
   */
  private regroup(
    group: PieceGroup,
    before: PublishedGroup | undefined,
    fresh: Generated[],
    gone: Generated[],
  ): PublishedGroup {
    if (before?.parts === group.parts) return before;
    const { parts } = group;
    const generated: Generated[] = new Array(parts.length);
    const unplaced: number[] = [];
    const shared = Math.min(parts.length, before?.parts.length ?? 0);
    for (let i = 0; i < parts.length; i++) {
      if (i < shared && parts[i] === before!.parts[i]) generated[i] = before!.generated[i]!;
      else unplaced.push(i);
    }
    if (unplaced.length === 0 && parts.length === before?.parts.length) return { parts, generated };
    // Parts that moved (one came or went before them) are found by identity among the others.
    const others = new Map<object, Generated>();
    const old = before?.parts ?? [];
    for (let i = 0; i < old.length; i++) {
      if (i < shared && old[i] === parts[i]) continue;
      // A part held twice: one copy is matched at most, the other's keys are released.
      if (others.has(old[i]!)) gone.push(before!.generated[i]!);
      else others.set(old[i]!, before!.generated[i]!);
    }
    for (const i of unplaced) {
      const part = parts[i]!;
      const held = others.get(part);
      if (held) others.delete(part);
      else fresh.push(this.generate(group, part));
      generated[i] = held ?? fresh[fresh.length - 1]!;
    }
    gone.push(...others.values());
    return { parts, generated };
  }

  private releaseGroup(g: PublishedGroup): void {
    for (const x of g.generated) this.encoder.releaseKeys(x.keys);
  }

  private generate(group: PieceGroup, part: object): Generated {
    const taken = group.specs(part).map((s) => this.encoder.acquire(s));
    return { resources: taken.map((t) => t.encoded), keys: taken.map((t) => t.key) };
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
