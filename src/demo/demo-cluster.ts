/**
 * One demo cluster: a real isthmus server in this process on 127.0.0.1 (every port chosen by the
 * OS), its data in `<workDir>/<dc>`, driven over its own HTTP API like a user would, and the
 * diagnostic xDS probes that connect as its proxies.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ApiClient } from '../api/client.js';
import { loadServerConfig } from '../config/index.js';
import type { AggregatedDiscoveryServiceClient } from '../gen/envoy/service/discovery/v3/ads.js';
import type { Logger } from '../log.js';
import { adsClient } from '../probe/delta-client.js';
import { XdsProbe } from '../probe/xds-probe.js';
import { startServer, type RunningServer } from '../server.js';

export interface DemoCluster {
  readonly label: 'A' | 'B';
  readonly datacenter: string;
  readonly server: RunningServer;
  readonly api: ApiClient;
  readonly httpAddr: string;
  readonly xdsAddr: string;
  readonly peeringAddr: string;
  /** A probe authenticated with a fresh proxy token for `proxyId` (POST /v1/acl/token). */
  probe(proxyId: string): Promise<XdsProbe>;
  stop(): Promise<void>;
}

export async function startDemoCluster(
  label: 'A' | 'B',
  datacenter: string,
  workDir: string,
  logger: Logger,
): Promise<DemoCluster> {
  const config = loadServerConfig({
    flags: {
      dataDir: join(workDir, datacenter),
      datacenter,
      httpAddr: '127.0.0.1:0',
      xdsAddr: '127.0.0.1:0',
      peeringAddr: '127.0.0.1:0',
      coalesceMs: '20',
    },
    env: {},
  });
  const server = await startServer(config, {
    logger: logger.child({ cluster: label, datacenter }),
  });
  const httpAddr = `127.0.0.1:${server.httpPort}`;
  const api = new ApiClient(`http://${httpAddr}`);
  const probes: XdsProbe[] = [];
  let ads: AggregatedDiscoveryServiceClient | undefined;
  return {
    label,
    datacenter,
    server,
    api,
    httpAddr,
    xdsAddr: `127.0.0.1:${server.xdsPort}`,
    peeringAddr: `127.0.0.1:${server.peeringPort}`,
    async probe(proxyId) {
      const { SecretID } = await api.post<{ SecretID: string }>('/v1/acl/token', {
        ProxyID: proxyId,
      });
      const md = new grpc.Metadata();
      md.set('x-isthmus-token', SecretID);
      ads ??= adsClient(`127.0.0.1:${server.xdsPort}`, server.xdsTls());
      const probe = new XdsProbe(ads, proxyId, md, {
        cluster: `demo-${datacenter}`,
        userAgentName: 'isthmus-demo',
      });
      probes.push(probe);
      return probe;
    },
    async stop() {
      for (const p of probes) p.close();
      ads?.close();
      await server.stop();
    },
  };
}
