/**
 * A diagnostic xDS client that subscribes the way Envoy does over Delta ADS: wildcard CDS and LDS,
 * then by name the endpoints, secrets and routes that the clusters and listeners it holds refer to.
 * It ACKs every response and keeps the resulting config (type → name → resource message), so an
 * operator (or `isthmus demo`) can see exactly what a proxy with that id would receive.
 */
import type * as grpc from '@grpc/grpc-js';
import type { AggregatedDiscoveryServiceClient } from '../gen/envoy/service/discovery/v3/ads.js';
import type { DeltaDiscoveryResponse } from '../gen/envoy/service/discovery/v3/discovery.js';
import { messageTypeRegistry } from '../gen/typeRegistry.js';
import { extractRefs } from '../xds/cache/refs.js';
import { expandedJson } from '../xds/envoy-json.js';
import { TypeUrl } from '../xds/types.js';
import {
  type ClientOptions,
  connectDelta,
  type DeltaClient,
  NoResponseError,
  type Received,
} from './delta-client.js';
import { typeNameOf } from '../proto-any.js';

export type Config = Map<string, Map<string, Record<string, unknown>>>;

/** What reading pushed config needs: the proxy id and the held resources. */
export interface HeldConfig {
  readonly nodeId: string;
  get(typeUrl: string, name: string): Record<string, unknown> | undefined;
}

export class XdsProbe implements HeldConfig {
  readonly config: Config = new Map();
  /** Every response received, in order (type, names, removed). */
  readonly log: { typeUrl: string; names: string[]; removed: string[] }[] = [];
  private readonly subscribed = new Map<string, Set<string>>();
  private readonly client: DeltaClient;
  private closed = false;
  private streamEnded: grpc.StatusObject | undefined;
  private failure: Error | undefined;

  constructor(
    ads: AggregatedDiscoveryServiceClient,
    readonly nodeId: string,
    metadata: grpc.Metadata,
    options: ClientOptions = {},
  ) {
    this.client = connectDelta(ads, nodeId, metadata, options);
    void this.client.ended.then((s) => (this.streamEnded = s));
    this.client.send(TypeUrl.cluster, { subscribe: ['*'] });
    this.client.send(TypeUrl.listener, { subscribe: ['*'] });
    void this.run();
  }

  get ended() {
    return this.client.ended;
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      let r: Received<DeltaDiscoveryResponse>;
      try {
        r = await this.client.next(1_000);
      } catch (err) {
        if (err instanceof NoResponseError && !this.streamEnded) continue;
        if (!this.closed)
          this.failure = this.streamEnded
            ? new Error(
                `${this.nodeId}: xDS stream ended: ${this.streamEnded.details || `code ${this.streamEnded.code}`}`,
              )
            : (err as Error);
        return;
      }
      this.apply(r);
      this.client.ack(r);
      if (r.typeUrl === TypeUrl.cluster || r.typeUrl === TypeUrl.listener) this.follow();
    }
  }

  private apply(r: Received<DeltaDiscoveryResponse>): void {
    let byName = this.config.get(r.typeUrl);
    if (!byName) this.config.set(r.typeUrl, (byName = new Map()));
    for (const res of r.resources) byName.set(res.name, res.message);
    for (const name of r.removed) byName.delete(name);
    this.log.push({
      typeUrl: r.typeUrl,
      names: r.resources.map((x) => x.name).sort(),
      removed: [...r.removed],
    });
  }

  /** Subscribe to what the held clusters and listeners name; drop what they no longer name. */
  private follow(): void {
    const wanted = new Map<string, Set<string>>([
      [TypeUrl.endpoint, new Set()],
      [TypeUrl.secret, new Set()],
      [TypeUrl.route, new Set()],
    ]);
    for (const t of [TypeUrl.cluster, TypeUrl.listener]) {
      for (const m of this.config.get(t)?.values() ?? [])
        for (const ref of extractRefs(m)) wanted.get(ref.typeUrl)?.add(ref.name);
    }
    for (const [t, names] of wanted) {
      const have = this.subscribed.get(t) ?? new Set<string>();
      const add = [...names].filter((n) => !have.has(n));
      const drop = [...have].filter((n) => !names.has(n));
      if (add.length || drop.length) this.client.send(t, { subscribe: add, unsubscribe: drop });
      for (const n of drop) this.config.get(t)?.delete(n);
      this.subscribed.set(t, names);
    }
  }

  names(typeUrl: string): string[] {
    return [...(this.config.get(typeUrl)?.keys() ?? [])].sort();
  }

  get(typeUrl: string, name: string): Record<string, unknown> | undefined {
    return this.config.get(typeUrl)?.get(name);
  }

  /** The resource as Envoy-style JSON text with every Any expanded ('' when not held). */
  json(typeUrl: string, name: string): string {
    const message = this.get(typeUrl, name);
    if (!message) return '';
    const typeName = typeNameOf(typeUrl);
    return JSON.stringify(
      expandedJson(
        typeName,
        messageTypeRegistry
          .get(typeName)!
          .encode(message as never)
          .finish(),
      ),
    );
  }

  /** Waits until `check` holds for the config, or throws at the deadline with what was held. */
  async until(check: (c: this) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check(this)) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) {
        const held = Object.fromEntries(
          [...this.config].map(([t, m]) => [t.split('.').pop(), [...m.keys()]]),
        );
        throw new Error(
          `${this.nodeId}: ${what} not reached within ${timeoutMs} ms; holds ${JSON.stringify(held)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Resolves once no response arrived for `quietMs` (after `until` showed the expected state). */
  async settle(quietMs = 300, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let seen = this.log.length;
    let since = Date.now();
    while (Date.now() - since < quietMs) {
      if (Date.now() > deadline)
        throw new Error(`${this.nodeId}: pushes did not settle within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 25));
      if (this.log.length !== seen) {
        seen = this.log.length;
        since = Date.now();
      }
    }
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }
}
