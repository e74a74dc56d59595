/**
 * docs/architecture.md §1: a failed start closes exactly the parts already created. Here the HTTP
 * port, bound last, is taken, so every other part was made (and the xDS and peering ports bound):
 * the next start on the same data directory and ports succeeds only if all were closed.
 */
import { type Server, createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/log.js';
import { startServer } from '../../src/server.js';
import { cleanupProcesses, tempDir } from '../helpers/process.js';

afterAll(cleanupProcesses);

const start = (dataDir: string, addrs: { http: string; xds: string; peering: string }) =>
  startServer(
    loadServerConfig({
      flags: { dataDir, httpAddr: addrs.http, xdsAddr: addrs.xds, peeringAddr: addrs.peering },
      env: {},
    }),
    { logger: silentLogger() },
  );

describe('a failed start', () => {
  it('closes the store and frees the ports of the parts it made', async () => {
    const dataDir = tempDir('isthmus-data-');
    const any = '127.0.0.1:0';
    // Ports known to be free: a server bound them and stopped.
    const first = await start(dataDir, { http: any, xds: any, peering: any });
    await first.stop();
    const xds = `127.0.0.1:${first.xdsPort}`;
    const peering = `127.0.0.1:${first.peeringPort}`;

    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const taken = `127.0.0.1:${(blocker.address() as { port: number }).port}`;
      await expect(start(dataDir, { http: taken, xds, peering })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }

    // The store directory can be opened only once per process, and the ports bound only once.
    const again = await start(dataDir, { http: any, xds, peering });
    expect([again.xdsPort, again.peeringPort]).toEqual([first.xdsPort, first.peeringPort]);
    await again.stop();
  });
});
