/**
 * The server side of the fleet benchmarks: an XdsServer over one XdsCache in this process (so
 * memory and CPU figures are the server's alone), a restart that keeps the cache (as a real
 * restart rebuilds the same content-hashed resources from the store) and binds the same port, and
 * the check that every proxy holds exactly what its view says.
 */
import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { entriesOf } from '../../src/xds/cache/proxy-view.js';
import { XdsServer } from '../../src/xds/server.js';
import { TypeUrl, type XdsTypeUrl } from '../../src/xds/types.js';
import type { HeldState } from './protocol.js';
import { until } from '../ads-fanout/stats.js';

/** The types the fleet proxies subscribe to. */
const checkedTypes: readonly XdsTypeUrl[] = [TypeUrl.cluster, TypeUrl.endpoint, TypeUrl.listener];

export class FleetServer {
  readonly metrics = new Metrics();
  readonly cache = new XdsCache(this.metrics);
  private current: XdsServer;
  private port = 0;

  constructor(private readonly maxStreams: number) {
    this.current = this.newServer();
  }

  get server(): XdsServer {
    return this.current;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private newServer(): XdsServer {
    // Plaintext, as bench:ads-fanout: TLS would add the same cost to every figure.
    return new XdsServer({
      logger: silentLogger(),
      metrics: this.metrics,
      cache: this.cache,
      maxStreams: this.maxStreams,
    });
  }

  async start(): Promise<void> {
    this.port = await this.current.listen(`127.0.0.1:${this.port}`);
  }

  /**
   * Ends every stream (UNAVAILABLE, as a SIGTERM does), drops the server object and binds a new
   * one on the same port. Returns the old server so the caller can check it let go of its streams.
   */
  async restart(): Promise<XdsServer> {
    const old = this.current;
    await old.shutdown(5_000);
    this.current = this.newServer();
    await this.start();
    return old;
  }

  /** Waits until `count` streams are admitted and no response awaits its ACK. */
  async settled(count: number, timeoutMs: number, what: string): Promise<void> {
    try {
      await until(
        () => this.current.connectedCount === count && this.current.pendingResponses === 0,
        what,
        timeoutMs,
        20,
      );
    } catch (err) {
      const s = this.current;
      throw new Error(
        `${(err as Error).message}: ${s.connectedCount} of ${count} streams admitted (${s.openCount} open), ${s.pendingResponses} responses unACKed`,
      );
    }
  }

  async stop(): Promise<void> {
    await this.current.shutdown(1_000);
  }
}

export interface Consistency {
  readonly proxies: number;
  /** Proxies whose held set differs from their view in any way. */
  readonly inconsistent: number;
  /** Resources of the views the proxies lack / hold at another version / hold but should not. */
  readonly missing: number;
  readonly stale: number;
  readonly extra: number;
  /** One example of a difference, for the report. */
  readonly example: string | undefined;
}

/** Compares each proxy's held resources with the view the cache holds for its node id. */
export function checkConsistency(cache: XdsCache, held: readonly HeldState[]): Consistency {
  let inconsistent = 0;
  let missing = 0;
  let stale = 0;
  let extra = 0;
  let example: string | undefined;
  for (const proxy of held) {
    const view = cache.view(proxy.id);
    let differs = false;
    for (const typeUrl of checkedTypes) {
      const want = entriesOf(view, typeUrl);
      const have = new Map(proxy.types[typeUrl] ?? []);
      for (const [name, entry] of want) {
        const version = have.get(name);
        if (version === undefined) missing++;
        else if (version !== entry.version) stale++;
        else continue;
        differs = true;
        example ??= `${proxy.id} ${typeUrl.split('.').pop()} ${name}: holds ${version ?? 'nothing'}, view has ${entry.version}`;
      }
      for (const name of have.keys())
        if (!want.has(name)) {
          extra++;
          differs = true;
          example ??= `${proxy.id} ${typeUrl.split('.').pop()} ${name}: held, not in its view`;
        }
    }
    if (differs) inconsistent++;
  }
  return { proxies: held.length, inconsistent, missing, stale, extra, example };
}

export function describe(c: Consistency): string {
  const verdict = c.inconsistent === 0 ? 'all consistent' : `${c.inconsistent} inconsistent`;
  const detail = `missing ${c.missing}, stale ${c.stale}, extra ${c.extra}`;
  return `${c.proxies} proxies: ${verdict} (${detail})${c.example ? `; e.g. ${c.example}` : ''}`;
}
