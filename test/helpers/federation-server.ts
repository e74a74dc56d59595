/**
 * WAN federation for tests (docs/architecture.md §6c): the shared secret's file, and an in-process
 * isthmus server of one federated datacenter (dc1 is the primary, every port on 127.0.0.1:0,
 * federation too, fast coalescing).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadServerConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/log.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { tempDir } from './process.js';

/** A 0600 file holding the secret every federated server shares (`--federation-secret-file`). */
export function federationSecretFile(): string {
  const file = join(tempDir('isthmus-fed-secret-'), 'secret');
  writeFileSync(file, 'federation-secret-of-the-datacenters\n', { mode: 0o600 });
  return file;
}

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
