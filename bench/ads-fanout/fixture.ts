/**
 * The view every benchmark proxy gets: one SDS secret, ten EDS clusters (TLS via that secret) with
 * their ClusterLoadAssignments (three endpoints each) and one TCP listener. Everything is encoded
 * once with `cache.encode` and the same EncodedResource objects are published to every proxy.
 */
import type { EncodedResource } from '../../src/xds/cache/entry.js';
import type { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { edsCluster, endpoints, secret, tcpListener } from '../../test/helpers/resources.js';
import { markerCluster, markerPortBase, type Expected } from './protocol.js';

const clusterCount = 10;
const secretName = 'ca-bundle';
const clusterName = (i: number) => `cluster-${i}`;

export class Fixture {
  readonly expected: Expected = {
    clusters: clusterCount,
    endpoints: clusterCount,
    secrets: 1,
    listeners: 1,
    secretName,
  };
  private readonly shared: readonly EncodedResource[];
  private readonly marker = new Map<number, EncodedResource>();

  constructor(private readonly cache: XdsCache) {
    const names = Array.from({ length: clusterCount }, (_, i) => clusterName(i));
    this.shared = [
      cache.encode(secret(secretName)),
      ...names.map((n) => cache.encode(edsCluster(n, { secret: secretName }))),
      ...names
        .filter((n) => n !== markerCluster)
        .map((n, i) => cache.encode(endpoints(n, [8080, 8081, 8082], `10.1.${i}.1`))),
      cache.encode(tcpListener('public-listener', 15001, markerCluster)),
    ];
  }

  /** The endpoints of the marker cluster at round `round` (0 is the initial config). */
  markerEndpoints(round: number): EncodedResource {
    let r = this.marker.get(round);
    if (!r)
      this.marker.set(
        round,
        (r = this.cache.encode(
          endpoints(markerCluster, [markerPortBase + round, 8081, 8082], '10.0.0.1'),
        )),
      );
    return r;
  }

  /** The resources of every proxy's view at `round`. */
  view(round: number): readonly EncodedResource[] {
    return [...this.shared, this.markerEndpoints(round)];
  }
}
