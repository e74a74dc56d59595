import type { SnapshotSink } from '../snapshot/manager.js';
import type { ConfigSnapshot } from '../snapshot/types.js';
import type { XdsCache } from './cache/xds-cache.js';
import { ResourceEncoder, resourcesFromSnapshot } from './resources/index.js';

/**
 * Publishes built snapshots to the xDS cache: a snapshot becomes resources, only the ones not
 * seen before are built and encoded, and the proxy's view is replaced whole. The snapshot layer
 * reaches it only through `SnapshotSink`, so snapshot/ never imports xds/ (docs/architecture.md
 * §12).
 */
export class SnapshotPublisher implements SnapshotSink {
  private readonly encoder: ResourceEncoder;

  constructor(private readonly cache: XdsCache) {
    this.encoder = new ResourceEncoder(cache);
  }

  publish(proxyId: string, snapshot: ConfigSnapshot): void {
    const encoded = this.encoder.encodeFor(proxyId, resourcesFromSnapshot(snapshot));
    this.cache.setProxyResources(proxyId, encoded);
  }

  remove(proxyId: string): void {
    this.encoder.release(proxyId);
    this.cache.removeProxy(proxyId);
  }
}
