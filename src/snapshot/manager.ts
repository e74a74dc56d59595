import { performance } from 'node:perf_hooks';
import type { CatalogEvent, CatalogReader, ServiceInstance } from '../catalog/types.js';
import type { CaEvent, CertificateAuthority } from '../ca/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { BuildContext, Built, FederationView } from './context.js';
import { MeshGatewayBuilder } from './mesh-gateway.js';
import { meshGatewaySpiffeId } from '../mesh/names.js';
import { configDep, SidecarBuilder, sidecarSpiffeId } from './sidecar.js';
import { type Changes, importedServiceKey } from './pieces.js';
import type { ConfigSnapshot } from './types.js';
import type { LivePeeringView, PeeringViewEvent } from './peering-view.js';
import type { LeafUsers } from './leaf-users.js';
import { Dependents } from './dependents.js';
import { DirtyQueue } from './dirty-queue.js';

/**
 * Where built snapshots go: the xDS layer's publisher (src/xds/snapshot-publisher.ts). The
 * snapshot layer sits below xds/ and reaches it only through this (docs/architecture.md §12).
 */
export interface SnapshotSink {
  /**
   * Publishes a proxy's config; throws if it cannot, and then the proxy keeps its last good one.
   */
  publish(proxyId: string, snapshot: ConfigSnapshot): void;
  /** The proxy is gone: its resources are dropped. */
  remove(proxyId: string): void;
}

export interface SnapshotManagerOptions {
  readonly catalog: CatalogReader;
  readonly ca: CertificateAuthority;
  readonly sink: SnapshotSink;
  /** Records which leaf each proxy is built with (shared with the CA's `leafInUse`). */
  readonly leafUsers: LeafUsers;
  readonly datacenter: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Bursts of changes within this window become one rebuild (ms, default 100). */
  readonly coalesceMs?: number;
  /** Cluster peering: peers, their bundles and imported services (absent: no peers). */
  readonly peering?: LivePeeringView | undefined;
  /** This server's peering port (`host:port`), for gateways peering through themselves. */
  readonly localPeeringAddresses?: (() => readonly string[]) | undefined;
  /** WAN federation: other datacenters' gateways; a change rebuilds every proxy. */
  readonly federation?:
    | { readonly view: FederationView; subscribe(listener: () => void): () => void }
    | undefined;
}

const isProxy = (i: ServiceInstance) => i.kind === 'connect-proxy' || i.kind === 'mesh-gateway';

/**
 * Rebuilds under way at once. A rebuild waits for the CA when its proxy needs a new leaf (each
 * proxy instance has its own, issue 18); a few in flight keep the CA's issuance slots full at a
 * start with thousands of proxies, while the builds themselves stay synchronous and one at a time.
 */
const rebuildsInFlight = 4;

/**
 * Keeps every registered proxy's xDS view current: catalog, config entry and CA events mark the
 * proxies that depend on them dirty; after a short coalescing window each dirty proxy's snapshot
 * is rebuilt and handed to the sink, which publishes it. A build that fails publishes nothing, so
 * the proxy keeps its last good config.
 */
export class SnapshotManager {
  private readonly deps = new Dependents();
  /** Proxies to rebuild, each with what changed for it since its last build; updates first. */
  private readonly dirty = new DirtyQueue();
  /** Each proxy's builder: it keeps the parts of its last snapshot that no change touched. */
  private readonly builders = new Map<string, ProxyBuilder>();
  /** Rebuilds under way, by proxy ID; `forgotten` is set when the proxy goes meanwhile. */
  private readonly building = new Map<string, { forgotten: boolean }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly unsubscribe: (() => void)[] = [];
  /** Proxies restored at start whose first build has not run yet (readiness waits for them). */
  private readonly firstBuildPending = new Set<string>();
  private stopped = false;

  constructor(private readonly opts: SnapshotManagerOptions) {}

  /** Subscribes to changes and builds every registered proxy. */
  start(): void {
    this.unsubscribe.push(this.opts.catalog.subscribe((e) => this.onCatalogEvent(e)));
    this.unsubscribe.push(this.opts.ca.subscribe((e) => this.onCaEvent(e)));
    if (this.opts.peering)
      this.unsubscribe.push(this.opts.peering.subscribe((e) => this.onPeeringEvent(e)));
    if (this.opts.federation)
      this.unsubscribe.push(this.opts.federation.subscribe(() => this.markAll()));
    for (const i of this.opts.catalog.allInstances()) {
      if (!isProxy(i)) continue;
      this.firstBuildPending.add(i.id);
      this.markDirty(i.id, 'all');
    }
  }

  /**
   * How many proxies restored at start still wait for their first build (0 once each has been
   * built and published, or failed and was logged): `/readyz` is 503 until then.
   */
  get proxiesWithoutSnapshot(): number {
    return this.firstBuildPending.size;
  }

  /**
   * Stops following changes. A rebuild under way stops after the proxy it is building (a first
   * rebuild of thousands of proxies takes seconds), so shutdown waits for one build at most.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.unsubscribe.splice(0)) u();
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    const unbuilt = new Set([...this.dirty.ids(), ...this.firstBuildPending]).size;
    if (unbuilt > 0) this.opts.logger.info({ unbuilt }, 'snapshot rebuild interrupted by shutdown');
  }

  /** Resolves when every change seen so far is published (tests, benchmarks). */
  async settled(): Promise<void> {
    while (!this.stopped && (this.dirty.size > 0 || this.timer)) {
      clearTimeout(this.timer);
      this.timer = undefined;
      await this.flush();
    }
    await this.flushing;
  }

  private onCatalogEvent(e: CatalogEvent): void {
    if (e.kind === 'config-entry-changed') {
      if (e.entryKind !== 'service-splitter' && e.entryKind !== 'service-router')
        return this.markAll();
      // Routers and splitters: only the proxies whose chains looked this entry up.
      return this.markDependents([configDep(e.entryKind, e.name)]);
    }
    const names = new Set([e.instance.name, e.instance.proxy?.destinationServiceName ?? '']);
    if (e.kind === 'instance-upserted' && e.previous) {
      names.add(e.previous.name);
      names.add(e.previous.proxy?.destinationServiceName ?? '');
    }
    names.delete('');
    if (e.kind === 'instance-removed' && isProxy(e.instance)) this.forget(e.instance.id);
    else if (isProxy(e.instance)) this.markDirty(e.instance.id, 'all');
    if (e.instance.kind === 'mesh-gateway') return this.markAll();
    this.markDependents([...names]);
  }

  /** Marks the proxies that depend on one of `keys` (gateways depend on everything). */
  private markDependents(keys: readonly string[]): void {
    const changed = new Set(keys);
    for (const id of this.deps.of(keys)) this.markDirty(id, changed);
  }

  private onCaEvent(e: CaEvent): void {
    if (e.kind === 'roots-changed') return this.markAll();
    // Each proxy holds its own leaf; the server's own leaves (peering) are no proxy's.
    const holder = e.leaf.holder;
    const proxy = holder === undefined ? undefined : this.opts.catalog.instance(holder);
    if (proxy && isProxy(proxy)) this.markDirty(proxy.id, 'all');
  }

  /**
   * The SPIFFE ID of the leaf a proxy is built with: the gateways' shared one, or its service's
   * (every instance presents its service's identity, with a key of its own).
   */
  private leafIdentityOf(proxy: ServiceInstance): string {
    const { trustDomain } = this.opts.ca;
    const { datacenter } = this.opts;
    return proxy.kind === 'mesh-gateway'
      ? meshGatewaySpiffeId(trustDomain, datacenter)
      : sidecarSpiffeId(proxy, { trustDomain, datacenter });
  }

  /**
   * A peer's bundle or liveness touches upstreams, inbound trust and RBAC anywhere; its imports
   * only the proxies with an upstream to that peer, and gateways.
   */
  private onPeeringEvent(e: PeeringViewEvent): void {
    if (e.kind === 'peer-bundle-changed') return this.markAll();
    this.markDependents([importedServiceKey(e.peer, e.service)]);
  }

  private markAll(): void {
    for (const i of this.opts.catalog.allInstances()) if (isProxy(i)) this.markDirty(i.id, 'all');
  }

  private markDirty(id: string, changes: Changes): void {
    this.dirty.mark(id, changes, this.builders.has(id), performance.now());
    if (this.stopped) return;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.opts.coalesceMs ?? 100);
  }

  /**
   * Whether a proxy's config is built with the leaf of this SPIFFE ID (the CA renews only those).
   */
  usesIdentity(spiffeId: string): boolean {
    return this.opts.leafUsers.uses(spiffeId);
  }

  /** The proxy is gone: its config is dropped, and so is its leaf, for good (issue 18). */
  private forget(id: string): void {
    const inFlight = this.building.get(id);
    if (inFlight) inFlight.forgotten = true;
    this.opts.ca.release(id);
    this.opts.leafUsers.set(id, undefined);
    this.deps.delete(id);
    this.builders.delete(id);
    this.dirty.delete(id);
    this.firstBuildPending.delete(id);
    this.opts.sink.remove(id);
  }

  /**
   * Rebuilds every proxy dirty when the flush starts, and those dirtied while it runs once they
   * have waited the coalescing window (a flush of a thousand first builds takes seconds): updates
   * before first builds, so a moved endpoint reaches the proxies already running at once.
   */
  private flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const started = performance.now();
      const coalesceMs = this.opts.coalesceMs ?? 100;
      // Stopping checks between proxies: a shutdown does not wait for the whole first rebuild.
      const worker = async () => {
        while (!this.stopped) {
          const next = this.dirty.take(Math.max(started, performance.now() - coalesceMs));
          if (!next) return;
          await this.rebuild(next.id, next.changes);
        }
      };
      await Promise.all(Array.from({ length: rebuildsInFlight }, worker));
    });
    return this.flushing;
  }

  private context(): BuildContext {
    return {
      catalog: this.opts.catalog,
      datacenter: this.opts.datacenter,
      trustDomain: this.opts.ca.trustDomain,
      roots: this.opts.ca.roots(),
      peerTrustDomain: (peer) => this.opts.peering?.bundle(peer)?.trustDomain,
      peering: this.opts.peering,
      localPeeringAddresses: this.opts.localPeeringAddresses?.(),
      federation: this.opts.federation?.view,
    };
  }

  private async rebuild(id: string, changes: Changes): Promise<void> {
    const instance = this.opts.catalog.instance(id);
    if (!instance || !isProxy(instance)) return this.forget(id);
    const started = performance.now();
    const inFlight = { forgotten: false };
    this.building.set(id, inFlight);
    try {
      const built = await this.build(instance, changes);
      // Deregistered while its leaf was being issued: that leaf is never handed out. If the ID
      // came back meanwhile, its registration marked it dirty, and it is built with a new leaf.
      if (inFlight.forgotten) return;
      this.opts.sink.publish(id, built.snapshot);
      this.deps.set(id, built.deps);
      this.opts.metrics.snapshotBuilds.inc({ kind: instance.kind, result: 'ok' });
    } catch (err) {
      // The builder's parts may be half updated: the next build starts from nothing.
      this.builders.delete(id);
      this.opts.metrics.snapshotBuilds.inc({ kind: instance.kind, result: 'error' });
      this.opts.logger.error(
        { proxyId: id, error: (err as Error).message },
        'proxy config not published; it keeps its last good config',
      );
    } finally {
      this.firstBuildPending.delete(id);
      this.building.delete(id);
      this.opts.metrics.snapshotBuildDuration.observe(
        { kind: instance.kind },
        (performance.now() - started) / 1000,
      );
    }
  }

  /** Builds a snapshot only once everything it needs is known (the leaf is issued on demand). */
  private async build(instance: ServiceInstance, changes: Changes): Promise<Built<ConfigSnapshot>> {
    // A gateway's own identity is used only where it terminates peers' mTLS for HTTP-family
    // exports.
    const spiffeId = this.leafIdentityOf(instance);
    this.opts.leafUsers.set(instance.id, spiffeId);
    // One leaf per proxy instance: the service's SPIFFE ID, the instance's own key pair.
    const leaf = await this.opts.ca.leaf({ spiffeId, holder: instance.id });
    // The context is read after the leaf, so the snapshot has the roots current when it is built.
    const ctx = this.context();
    const builder = this.builderOf(instance);
    return builder.kind === 'mesh-gateway'
      ? builder.builder.build(instance, ctx, leaf, changes)
      : builder.builder.build(instance, leaf, ctx, changes);
  }

  private builderOf(instance: ServiceInstance): ProxyBuilder {
    let builder = this.builders.get(instance.id);
    if (builder?.kind !== instance.kind) {
      builder =
        instance.kind === 'mesh-gateway'
          ? { kind: 'mesh-gateway', builder: new MeshGatewayBuilder() }
          : { kind: 'connect-proxy', builder: new SidecarBuilder() };
      this.builders.set(instance.id, builder);
    }
    return builder;
  }
}

type ProxyBuilder =
  | { readonly kind: 'mesh-gateway'; readonly builder: MeshGatewayBuilder }
  | { readonly kind: 'connect-proxy'; readonly builder: SidecarBuilder };
