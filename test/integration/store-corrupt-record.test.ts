import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openLmdbStore } from '../../src/store/index.js';
import { cleanupProcesses, runCli, startServerProcess, tempDir } from '../helpers/process.js';

afterEach(cleanupProcesses);
afterAll(cleanupProcesses);

describe('isthmus server on a data dir with a corrupt record', () => {
  it('exits 1 with one line naming the key and the field; without the record it starts', async () => {
    const dataDir = tempDir('isthmus-data-');
    const store = await openLmdbStore(dataDir);
    await store.put('peering/peerings/dc-b', {
      ID: 'a6f3c1de-0000-4000-8000-000000000001',
      Name: 'dc-b',
      State: 'ACTIVE',
      PeerID: '',
      PeerServerName: '',
      PeerServerAddresses: [],
      PeerCAPems: [],
      PeerTrustDomain: 'b.consul',
      Meta: {},
      Remote: { Partition: 'default', Datacenter: 'dc-b' },
      StreamStatus: { ImportedServices: [], ExportedServices: [] },
      CreateIndex: 'five',
      ModifyIndex: 9,
    });
    await store.close();

    const res = await runCli([
      'server',
      '--http-addr',
      '127.0.0.1:0',
      '--xds-addr',
      '127.0.0.1:0',
      '--peering-addr',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
    ]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      'isthmus: stored peering "peering/peerings/dc-b" is invalid: CreateIndex: Invalid input: expected number, received string\n',
    );

    // The record is left for the operator to see; nothing else it wrote is damaged.
    const after = await openLmdbStore(dataDir);
    try {
      expect(await after.get('peering/peerings/dc-b')).toMatchObject({ CreateIndex: 'five' });
      await after.delete('peering/peerings/dc-b');
    } finally {
      await after.close();
    }
    const server = await startServerProcess([], { dataDir });
    expect((await fetch(server.url('/readyz'))).status).toBe(200);
    expect(await (await fetch(server.url('/v1/peerings'))).json()).toEqual([]);
  });
});
