/**
 * The config the fleet benchmarks publish: `services` services, each an EDS cluster and its
 * ClusterLoadAssignment, and `proxies` proxies, each with `upstreams` of them and one TCP listener
 * to its first. Proxy i's upstreams are services i, i + stride, i + 2·stride, … (mod services), so
 * every service has about the same number of proxies and neighbouring proxies see different sets.
 * Each resource is encoded once (`cache.encode`) and the same objects go into every view; a change
 * is published to the proxies it touches as an update of their views.
 */
import type { EncodedResource } from '../../src/xds/cache/entry.js';
import type { ViewUpdate, XdsCache } from '../../src/xds/cache/xds-cache.js';
import { edsCluster, endpoints, tcpListener } from '../../test/helpers/resources.js';

export interface Topology {
  readonly services: number;
  readonly proxies: number;
  readonly upstreams: number;
}

export const nodeId = (i: number) => `proxy-${i}`;
const serviceName = (s: number) => `svc-${s}`;

export class FleetViews {
  private readonly clusters: EncodedResource[];
  private readonly assignments: EncodedResource[];
  private readonly listeners: EncodedResource[];
  /** Per proxy, its upstream services; per service, the proxies that have it. */
  private readonly upstreamsOf: number[][];
  private readonly dependents: number[][];
  /** Services taken out of every view (never a proxy's first upstream: its listener names it). */
  private readonly absent = new Set<number>();
  private moves = 0;

  constructor(
    private readonly cache: XdsCache,
    readonly topology: Topology,
  ) {
    const { services, proxies, upstreams } = topology;
    if (upstreams > services) throw new Error('--upstreams must not exceed --services');
    const stride = Math.max(1, Math.floor(services / upstreams));
    this.clusters = Array.from({ length: services }, (_, s) =>
      cache.encode(edsCluster(serviceName(s))),
    );
    this.assignments = Array.from({ length: services }, (_, s) => this.encodeEndpoints(s, 0));
    this.listeners = Array.from({ length: services }, (_, s) =>
      cache.encode(tcpListener('public-listener', 15001, serviceName(s))),
    );
    this.dependents = Array.from({ length: services }, () => []);
    this.upstreamsOf = Array.from({ length: proxies }, (_, i) => {
      const set = new Set<number>();
      for (let k = 0; set.size < upstreams; k++)
        set.add((i + k * stride + Math.floor(k / upstreams)) % services);
      const list = [...set];
      for (const s of list) this.dependents[s]!.push(i);
      return list;
    });
  }

  private encodeEndpoints(s: number, move: number): EncodedResource {
    const host = `10.${(s >> 8) & 255}.${s & 255}.1`;
    return this.cache.encode(endpoints(serviceName(s), [20000 + (move % 40000), 8081, 8082], host));
  }

  /** Proxy i's resources as they are now. */
  view(i: number): EncodedResource[] {
    const ups = this.upstreamsOf[i]!;
    const out: EncodedResource[] = [this.listeners[ups[0]!]!];
    for (const s of ups) {
      if (this.absent.has(s)) continue;
      out.push(this.clusters[s]!, this.assignments[s]!);
    }
    return out;
  }

  publishAll(): void {
    for (let i = 0; i < this.topology.proxies; i++)
      this.cache.setProxyResources(nodeId(i), this.view(i));
  }

  /**
   * Applies `update` to the view of every proxy that has service `s`, as the snapshot publisher
   * publishes a change (`updateProxyResources`: the resources that changed, not the whole view).
   * Returns how many views were published.
   */
  private publishChange(s: number, update: ViewUpdate): number {
    const deps = this.dependents[s]!;
    for (const i of deps) this.cache.updateProxyResources(nodeId(i), update);
    return deps.length;
  }

  /** One endpoint of service `s` moves (a new port). Returns the proxies it was published to. */
  moveEndpoint(s: number): number {
    const assignment = this.encodeEndpoints(s, ++this.moves);
    this.assignments[s] = assignment;
    if (this.absent.has(s)) return 0;
    return this.publishChange(s, { upsert: [assignment] });
  }

  /**
   * Service `s` leaves every view, or comes back (its cluster and endpoints together). A service
   * some proxy has as its first upstream is left alone. Returns the proxies published to.
   */
  toggleService(s: number): number {
    if (this.dependents[s]!.some((i) => this.upstreamsOf[i]![0] === s)) return 0;
    const both = [this.clusters[s]!, this.assignments[s]!];
    if (this.absent.delete(s)) return this.publishChange(s, { upsert: both });
    this.absent.add(s);
    return this.publishChange(s, { remove: both.map(({ typeUrl, name }) => ({ typeUrl, name })) });
  }

  randomService(): number {
    return Math.floor(Math.random() * this.topology.services);
  }
}
