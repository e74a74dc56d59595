import { Metrics } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { XdsServer, type XdsServerOptions } from '../../src/xds/server.js';
import { adsClient } from './fake-envoy.js';
import type { AggregatedDiscoveryServiceClient } from '../../src/gen/envoy/service/discovery/v3/ads.js';

export interface XdsHarness {
  readonly server: XdsServer;
  readonly cache: XdsCache;
  readonly metrics: Metrics;
  readonly address: string;
  readonly client: AggregatedDiscoveryServiceClient;
  close(): Promise<void>;
}

/**
 * An in-process xDS server on 127.0.0.1:0 with its own cache and metrics: plaintext unless
 * `opts.tls` is given (the client follows). TLS is the subject of test/integration/xds-tls.test.ts.
 */
export async function startXds(
  opts: Partial<Omit<XdsServerOptions, 'cache' | 'logger' | 'metrics'>> = {},
): Promise<XdsHarness> {
  const metrics = new Metrics();
  const cache = new XdsCache(metrics);
  const server = new XdsServer({ logger: silentLogger(), metrics, cache, ...opts });
  const port = await server.listen('127.0.0.1:0');
  const address = `127.0.0.1:${port}`;
  const client = adsClient(address, server.clientTls());
  return {
    server,
    cache,
    metrics,
    address,
    client,
    async close() {
      client.close();
      await server.shutdown(1_000);
    },
  };
}

/** Current value of a counter/gauge with the given labels. */
export async function metricValue(
  metrics: Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as {
    value: number;
    labels: Record<string, string | number>;
  }[];
  const hit = values.find((v) =>
    Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val),
  );
  return hit?.value ?? 0;
}
