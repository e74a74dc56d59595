import { performance } from 'node:perf_hooks';
import { IsthmusError } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import { shortName, type XdsTypeUrl } from '../types.js';
import { CacheEntry, encodeResource, type EncodedResource, type EnvoyMessage } from './entry.js';
import { checkConsistency, type ProxyView } from './proxy-view.js';

export type ResourceInput = EncodedResource | EnvoyMessage;

export interface ViewUpdate {
  readonly upsert?: readonly ResourceInput[];
  readonly remove?: readonly { readonly typeUrl: XdsTypeUrl; readonly name: string }[];
}

type Listener = (view: ProxyView) => void;

function isEncoded(r: ResourceInput): r is EncodedResource {
  return (r as EncodedResource).bytes instanceof Uint8Array;
}

/**
 * The xDS cache: proxy views (node id → names → entries) over one pool of shared, encoded-once
 * entries. Publishing a view checks it for consistency first and refuses an inconsistent one, so a
 * proxy keeps its last good config. This is the only seam between config generation and streams:
 * streams `watch` a node id and read its current view.
 */
export class XdsCache {
  private readonly pool = new Map<string, { entry: CacheEntry; users: number }>();
  private readonly views = new Map<string, ProxyView>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private revisionCounter = 0;

  constructor(private readonly metrics?: Metrics) {}

  /** Encodes a resource (counted in isthmus_xds_resource_encodes_total). */
  encode(message: EnvoyMessage): EncodedResource {
    return encodeResource(message, (t) => this.metrics?.xdsEncodes.inc({ type: shortName[t] }));
  }

  view(nodeId: string): ProxyView | undefined {
    return this.views.get(nodeId);
  }

  nodeIds(): string[] {
    return [...this.views.keys()].sort();
  }

  /** Distinct encoded resources held (shared across all proxies). */
  get entryCount(): number {
    return this.pool.size;
  }

  /** Replaces the proxy's whole view. Throws (and changes nothing) when it is inconsistent. */
  setProxyResources(nodeId: string, resources: readonly ResourceInput[]): ProxyView {
    return this.publish(nodeId, new Map(), { upsert: resources });
  }

  /** Upserts and removes some resources of the proxy's view. Throws when the result is inconsistent. */
  updateProxyResources(nodeId: string, update: ViewUpdate): ProxyView {
    const current: ProxyView['resources'] = this.views.get(nodeId)?.resources ?? new Map();
    const base = new Map<XdsTypeUrl, Map<string, CacheEntry>>();
    for (const [t, byName] of current) base.set(t, new Map(byName));
    return this.publish(nodeId, base, update);
  }

  /** Forgets the proxy: its open streams see an empty view (every resource removed). */
  removeProxy(nodeId: string): void {
    const old = this.views.get(nodeId);
    if (!old) return;
    this.views.delete(nodeId);
    this.release(old);
    this.notify(nodeId, this.makeView(nodeId, new Map()));
  }

  /** Calls `listener` with every view published for the node id from now on. */
  watch(nodeId: string, listener: Listener): () => void {
    let set = this.listeners.get(nodeId);
    if (!set) this.listeners.set(nodeId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(nodeId);
    };
  }

  private publish(nodeId: string, base: Map<XdsTypeUrl, Map<string, CacheEntry>>, update: ViewUpdate): ProxyView {
    const seen = new Set<string>();
    const errors: string[] = [];
    for (const r of update.remove ?? []) base.get(r.typeUrl)?.delete(r.name);
    for (const input of update.upsert ?? []) {
      const encoded = isEncoded(input) ? input : this.encode(input);
      const key = `${encoded.typeUrl} ${encoded.name}`;
      if (seen.has(key)) errors.push(`duplicate ${shortName[encoded.typeUrl]} resource "${encoded.name}"`);
      seen.add(key);
      let byName = base.get(encoded.typeUrl);
      if (!byName) base.set(encoded.typeUrl, (byName = new Map()));
      byName.set(encoded.name, this.peekOrCreate(encoded));
    }
    errors.push(...checkConsistency(base));
    if (errors.length > 0) {
      throw new IsthmusError('failed_precondition', `inconsistent xDS view for proxy "${nodeId}": ${errors.join('; ')}`);
    }
    const old = this.views.get(nodeId);
    if (old && sameResources(old.resources, base)) return old;
    const view = this.makeView(nodeId, base);
    this.acquire(view);
    this.views.set(nodeId, view);
    if (old) this.release(old);
    this.notify(nodeId, view);
    return view;
  }

  private makeView(nodeId: string, resources: Map<XdsTypeUrl, Map<string, CacheEntry>>): ProxyView {
    return Object.freeze({ nodeId, revision: ++this.revisionCounter, publishedAt: performance.now(), resources });
  }

  /** The pooled entry for this content, or a new one (not yet counted as used). */
  private peekOrCreate(encoded: EncodedResource): CacheEntry {
    const pooled = this.pool.get(`${encoded.typeUrl} ${encoded.version}`);
    return pooled ? pooled.entry : new CacheEntry(encoded);
  }

  private acquire(view: ProxyView): void {
    for (const byName of view.resources.values()) {
      for (const entry of byName.values()) {
        const key = `${entry.typeUrl} ${entry.version}`;
        const pooled = this.pool.get(key);
        if (pooled) pooled.users++;
        else this.pool.set(key, { entry, users: 1 });
      }
    }
  }

  private release(view: ProxyView): void {
    for (const byName of view.resources.values()) {
      for (const entry of byName.values()) {
        const key = `${entry.typeUrl} ${entry.version}`;
        const pooled = this.pool.get(key);
        if (pooled && --pooled.users === 0) this.pool.delete(key);
      }
    }
  }

  private notify(nodeId: string, view: ProxyView): void {
    for (const listener of this.listeners.get(nodeId) ?? []) listener(view);
  }
}

function sameResources(a: ProxyView['resources'], b: ProxyView['resources']): boolean {
  const types = new Set([...a.keys(), ...b.keys()]);
  for (const t of types) {
    const x = a.get(t) ?? new Map<string, CacheEntry>();
    const y = b.get(t) ?? new Map<string, CacheEntry>();
    if (x.size !== y.size) return false;
    for (const [name, entry] of x) if (y.get(name)?.version !== entry.version) return false;
  }
  return true;
}
