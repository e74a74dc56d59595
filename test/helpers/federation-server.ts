/**
 * An in-process isthmus server of one WAN-federated datacenter (docs/architecture.md §6c): dc1 is
 * the primary, every port on 127.0.0.1:0 (federation too), fast coalescing.
 */
import { loadServerConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/log.js';
import { type RunningServer, startServer } from '../../src/server.js';

/** Starts `dc`'s server on `dataDir`; `flags` (camelCase) add to or override the defaults. */
export function startFederationServer(
  dc: string,
  dataDir: string,
  flags: Record<string, string> = {},
): Promise<RunningServer> {
  const config = loadServerConfig({
    env: {},
    flags: {
      dataDir,
      httpAddr: '127.0.0.1:0',
      xdsAddr: '127.0.0.1:0',
      peeringAddr: '127.0.0.1:0',
      federationAddr: '127.0.0.1:0',
      coalesceMs: '20',
      datacenter: dc,
      primaryDatacenter: 'dc1',
      ...flags,
    },
  });
  return startServer(config, { logger: silentLogger() });
}
