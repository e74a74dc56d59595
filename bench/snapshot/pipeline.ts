/**
 * One proxy's rebuild, as SnapshotManager.rebuild (src/snapshot/manager.ts) does it, by one of two
 * paths timed per step (the leaf is a fixed value: the manager gets it from the CA, which caches
 * it):
 *
 * - `incremental` (the server's): the proxy's builder rebuilds the parts the change touched and
 *   the SnapshotPublisher generates, encodes and publishes the resources of those parts;
 * - `full` (the reference, the server's path before issue 14): a whole snapshot from scratch →
 *   resourcesFromSnapshot → ResourceEncoder.encodeFor → XdsCache.setProxyResources.
 */
import { performance } from 'node:perf_hooks';
import type { Leaf } from '../../src/ca/types.js';
import type { CatalogReader } from '../../src/catalog/types.js';
import { Metrics } from '../../src/metrics.js';
import type { Built, PeeringView } from '../../src/snapshot/context.js';
import { MeshGatewayBuilder } from '../../src/snapshot/mesh-gateway.js';
import type { Changes } from '../../src/snapshot/pieces.js';
import { SidecarBuilder, sidecarSpiffeId } from '../../src/snapshot/sidecar.js';
import type { ConfigSnapshot } from '../../src/snapshot/types.js';
import type { ProxyView } from '../../src/xds/cache/proxy-view.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { resourcesFromSnapshot, ResourceEncoder } from '../../src/xds/resources/index.js';
import { SnapshotPublisher } from '../../src/xds/snapshot-publisher.js';
import { contextFor, leafFor, mustGet } from './catalogs.js';

export type Path = 'incremental' | 'full';

export interface Timing {
  readonly buildMs: number;
  /** generate, encode and publish are one step of the incremental path: there they are NaN. */
  readonly generateMs: number;
  readonly encodeMs: number;
  readonly publishMs: number;
  readonly totalMs: number;
  /** Process CPU time (user + system, all threads: GC helpers count) over the same span. */
  readonly cpuMs: number;
}

export interface Rebuilt {
  readonly timing: Timing;
  readonly view: ProxyView;
}

/**
 * The cache, its encoder (full path) or publisher (incremental path) and the Metrics counting its
 * encodes: what one server holds.
 */
export class Server {
  readonly metrics = new Metrics();
  readonly cache = new XdsCache(this.metrics);
  readonly encoder = new ResourceEncoder(this.cache);
  readonly publisher = new SnapshotPublisher(this.cache);

  /** isthmus_xds_resource_encodes_total summed over types. */
  async encodes(): Promise<number> {
    const { values } = await this.metrics.xdsEncodes.get();
    return values.reduce((sum, v) => sum + v.value, 0);
  }
}

export class ProxyPipeline {
  private readonly leaf: Leaf | undefined;
  private gateway = new MeshGatewayBuilder();
  private sidecar = new SidecarBuilder();

  constructor(
    private readonly catalog: CatalogReader,
    readonly proxyId: string,
    readonly path: Path,
    private readonly peering?: PeeringView,
  ) {
    const proxy = mustGet(catalog, proxyId);
    this.leaf =
      proxy.kind === 'connect-proxy'
        ? leafFor(sidecarSpiffeId(proxy, contextFor(catalog)))
        : undefined;
  }

  /** The full path builds from scratch; so does the incremental one on `all`. */
  private build(changes: Changes): Built<ConfigSnapshot> {
    if (this.path === 'full' || changes === 'all') {
      this.gateway = new MeshGatewayBuilder();
      this.sidecar = new SidecarBuilder();
    }
    const instance = mustGet(this.catalog, this.proxyId);
    const ctx = contextFor(this.catalog, this.peering);
    if (instance.kind === 'mesh-gateway')
      return this.gateway.build(instance, ctx, undefined, changes);
    return this.sidecar.build(instance, this.leaf!, ctx, changes);
  }

  /**
   * Rebuilds the proxy after `changes` and publishes it on `server`; throws when the cache refuses
   * the view.
   */
  rebuild(server: Server, changes: Changes): Rebuilt {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const built = this.build(changes);
    const t1 = performance.now();
    let t2 = Number.NaN;
    let t3 = Number.NaN;
    if (this.path === 'incremental') server.publisher.publish(this.proxyId, built.snapshot);
    else {
      const specs = resourcesFromSnapshot(built.snapshot);
      t2 = performance.now();
      const encoded = server.encoder.encodeFor(this.proxyId, specs);
      t3 = performance.now();
      server.cache.setProxyResources(this.proxyId, encoded);
    }
    const t4 = performance.now();
    const view = server.cache.view(this.proxyId);
    if (!view) throw new Error(`no view of ${this.proxyId} was published`);
    const cpu = process.cpuUsage(cpu0);
    const timing = {
      buildMs: t1 - t0,
      generateMs: t2 - t1,
      encodeMs: t3 - t2,
      publishMs: this.path === 'full' ? t4 - t3 : t4 - t1,
      totalMs: t4 - t0,
      cpuMs: (cpu.user + cpu.system) / 1000,
    };
    return { timing, view };
  }
}
