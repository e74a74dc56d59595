/**
 * One proxy's rebuild, step for step as SnapshotManager.rebuild (src/snapshot/manager.ts) does it:
 * build the snapshot → resourcesFromSnapshot → ResourceEncoder.encodeFor →
 * XdsCache.setProxyResources, timed per step. The leaf is a fixed value: the manager gets it from
 * the CA, which caches it.
 */
import { performance } from 'node:perf_hooks';
import type { Leaf } from '../../src/ca/types.js';
import type { CatalogReader } from '../../src/catalog/types.js';
import { Metrics } from '../../src/metrics.js';
import type { Built } from '../../src/snapshot/context.js';
import { buildMeshGatewaySnapshot } from '../../src/snapshot/mesh-gateway.js';
import { buildSidecarSnapshot, sidecarSpiffeId } from '../../src/snapshot/sidecar.js';
import type { ConfigSnapshot } from '../../src/snapshot/types.js';
import type { EncodedResource } from '../../src/xds/cache/entry.js';
import type { ProxyView } from '../../src/xds/cache/proxy-view.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { resourcesFromSnapshot, ResourceEncoder } from '../../src/xds/resources/index.js';
import { contextFor, leafFor, mustGet } from './catalogs.js';

export interface Timing {
  readonly buildMs: number;
  readonly generateMs: number;
  readonly encodeMs: number;
  readonly publishMs: number;
  readonly totalMs: number;
  /** Process CPU time (user + system, all threads: GC helpers count) over the same span. */
  readonly cpuMs: number;
}

export interface Rebuilt {
  readonly timing: Timing;
  readonly encoded: readonly EncodedResource[];
  readonly view: ProxyView;
}

/** The cache, its encoder and the Metrics counting its encodes: what one server holds. */
export class Server {
  readonly metrics = new Metrics();
  readonly cache = new XdsCache(this.metrics);
  readonly encoder = new ResourceEncoder(this.cache);

  /** isthmus_xds_resource_encodes_total summed over types. */
  async encodes(): Promise<number> {
    const { values } = await this.metrics.xdsEncodes.get();
    return values.reduce((sum, v) => sum + v.value, 0);
  }
}

export class ProxyPipeline {
  private readonly leaf: Leaf | undefined;

  constructor(
    private readonly catalog: CatalogReader,
    readonly proxyId: string,
  ) {
    const proxy = mustGet(catalog, proxyId);
    this.leaf =
      proxy.kind === 'connect-proxy'
        ? leafFor(sidecarSpiffeId(proxy, contextFor(catalog)))
        : undefined;
  }

  private build(): Built<ConfigSnapshot> {
    const instance = mustGet(this.catalog, this.proxyId);
    const ctx = contextFor(this.catalog);
    if (instance.kind === 'mesh-gateway') return buildMeshGatewaySnapshot(instance, ctx);
    return buildSidecarSnapshot(instance, this.leaf!, ctx);
  }

  /** Rebuilds and publishes the proxy on `server`; throws when the cache refuses the view. */
  rebuild(server: Server): Rebuilt {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const built = this.build();
    const t1 = performance.now();
    const specs = resourcesFromSnapshot(built.snapshot);
    const t2 = performance.now();
    const encoded = server.encoder.encodeFor(this.proxyId, specs);
    const t3 = performance.now();
    const view = server.cache.setProxyResources(this.proxyId, encoded);
    const t4 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    const timing = {
      buildMs: t1 - t0,
      generateMs: t2 - t1,
      encodeMs: t3 - t2,
      publishMs: t4 - t3,
      totalMs: t4 - t0,
      cpuMs: (cpu.user + cpu.system) / 1000,
    };
    return { timing, encoded, view };
  }
}
