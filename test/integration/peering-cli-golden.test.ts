/**
 * Golden output of `isthmus peering list` and `isthmus peering read --name …` (issue 6) on a peered
 * pair that exports both ways: the real CLI against two in-process servers, with IDs, times,
 * ephemeral ports and trust domains masked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeeringJson } from '../../src/api/peering-routes.js';
import { expectGoldenText } from '../helpers/golden.js';
import type { MeshServer } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes, type PeeredMeshes } from '../helpers/peered-mesh.js';
import { cleanupProcesses, runCli } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

let meshes: PeeredMeshes;
let a: MeshServer;
let b: MeshServer;
let tdA: string;
let tdB: string;

function withSidecar(name: string, port: number) {
  return {
    ID: name,
    Name: name,
    Address: '127.0.0.1',
    Port: port,
    Check: { TTL: '600s', Status: 'passing' },
    Connect: { SidecarService: {} },
  };
}

function gateway(id: string, wan: string) {
  return {
    ID: id,
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Address: '127.0.0.1',
    Port: 8443,
    TaggedAddresses: { wan: { Address: wan, Port: 443 } },
  };
}

function mask(text: string): string {
  return text
    .replaceAll(tdA, '<td-a>')
    .replaceAll(tdB, '<td-b>')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<uuid>')
    .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, '<time>')
    .replace(/127\.0\.0\.1:\d{5}\b/g, '127.0.0.1:<port>');
}

/** Both sides show what they export and import (replication has settled). */
async function replicated(
  node: MeshServer,
  peer: string,
  imported: string[],
  exported: string[],
): Promise<void> {
  const want = JSON.stringify([imported, exported]);
  await waitFor(
    async () => {
      const p = (await node.api<PeeringJson>('GET', `/v1/peering/${peer}`)).body;
      return (
        p.State === 'ACTIVE' &&
        p.StreamStatus.LastHeartbeat !== null &&
        p.StreamStatus.LastSend !== null &&
        JSON.stringify([p.StreamStatus.ImportedServices, p.StreamStatus.ExportedServices]) === want
      );
    },
    {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: `${peer} to import ${imported.join(',')} and export ${exported.join(',')}`,
    },
  );
}

async function golden(node: MeshServer, args: string[], file: string): Promise<void> {
  const run = await runCli([
    'peering',
    ...args,
    '--http-addr',
    `127.0.0.1:${node.server.httpPort}`,
  ]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const { actual, expected } = expectGoldenText(`cli/${file}.txt`, run.stdout, mask);
  expect(actual).toBe(expected);
}

beforeAll(async () => {
  meshes = await startPeeredMeshes();
  ({ a, b } = meshes);
  [tdA, tdB] = await Promise.all([a.trustDomain(), b.trustDomain()]);
  await Promise.all([
    a.register(withSidecar('api', 9090)),
    a.register(withSidecar('orders', 9092)),
    a.register(gateway('gw-a', '203.0.113.7')),
  ]);
  await Promise.all([
    b.register(withSidecar('web', 8080)),
    b.register(gateway('gw-b', '198.51.100.9')),
  ]);
  await a.putConfig(exportEntry({ api: ['cluster-b'], orders: ['cluster-b'] }));
  await b.putConfig(exportEntry({ web: ['cluster-a'] }));
  await Promise.all([
    replicated(a, 'cluster-b', ['web'], ['api', 'orders']),
    replicated(b, 'cluster-a', ['api', 'orders'], ['web']),
  ]);
}, 30_000);

afterAll(async () => {
  await meshes?.close();
  await cleanupProcesses();
});

describe('isthmus peering list / read on a peered pair', () => {
  it('list and read on both sides: states, health, remote datacenter, imported and exported services', async () => {
    await Promise.all([
      golden(a, ['list'], 'peering-list-acceptor'),
      golden(b, ['list'], 'peering-list-dialer'),
      golden(a, ['read', '--name', 'cluster-b'], 'peering-read-acceptor'),
      golden(b, ['read', '--name', 'cluster-a'], 'peering-read-dialer'),
    ]);
  });

  it('read of an unknown peering is a one-line 404 error', async () => {
    const run = await runCli([
      'peering',
      'read',
      '--name',
      'nope',
      '--http-addr',
      `127.0.0.1:${a.server.httpPort}`,
    ]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe('isthmus: peering "nope" not found (HTTP 404)\n');
  });
});
