/**
 * Replication between two real servers in this process (LMDB stores in temp dirs, HTTP, and the
 * TLS peering port on 127.0.0.1:0): A generates the token and exports, B establishes, dials the
 * stream and imports. Everything is observed through the HTTP API, as a user would.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialPeer } from '../../src/peering/dial.js';
import { peeringIdentity } from '../../src/peering/server.js';
import { loadServerConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/log.js';
import { meshGatewaySpiffeId, peeredServiceSni, serviceSpiffeId } from '../../src/mesh/names.js';
import { type RunningServer, startServer } from '../../src/server.js';
import type { PeeringJson } from '../../src/api/peering-routes.js';
import { cleanupProcesses, tempDir } from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

interface Cluster {
  readonly server: RunningServer;
  readonly dataDir: string;
  api<T = any>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T; text: string }>;
}

const running: Cluster[] = [];

async function startCluster(
  datacenter: string,
  flags: Record<string, string> = {},
  dataDir = tempDir('isthmus-repl-'),
): Promise<Cluster> {
  const config = loadServerConfig({
    flags: {
      dataDir,
      datacenter,
      httpAddr: '127.0.0.1:0',
      xdsAddr: '127.0.0.1:0',
      peeringAddr: '127.0.0.1:0',
      ...flags,
    },
    env: {},
  });
  const server = await startServer(config, { logger: silentLogger() });
  const api = async (method: string, path: string, body?: unknown) => {
    const init: RequestInit = { method };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (body !== undefined) init.headers = { 'content-type': 'application/json' };
    const res = await fetch(`http://127.0.0.1:${server.httpPort}${path}`, init);
    const text = await res.text();
    return {
      status: res.status,
      body:
        text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined,
      text,
    };
  };
  const cluster = { server, dataDir, api };
  running.push(cluster);
  return cluster;
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.server.stop()));
});
afterAll(cleanupProcesses);

const peering = async (c: Cluster, name: string): Promise<PeeringJson | undefined> => {
  const res = await c.api<PeeringJson>('GET', `/v1/peering/${name}`);
  return res.status === 200 ? res.body : undefined;
};

const stateIs = (c: Cluster, name: string, state: string) => async () =>
  (await peering(c, name))?.State === state;

async function peer(a: Cluster, b: Cluster): Promise<void> {
  const token = await a.api<{ PeeringToken: string }>('POST', '/v1/peering/token', {
    PeerName: 'cluster-b',
  });
  expect(token.status, token.text).toBe(200);
  const est = await b.api('POST', '/v1/peering/establish', {
    PeerName: 'cluster-a',
    PeeringToken: token.body.PeeringToken,
  });
  expect(est.status, est.text).toBe(200);
  await waitFor(stateIs(b, 'cluster-a', 'ACTIVE'), {
    timeoutMs: 10_000,
    intervalMs: 20,
    what: 'B to be ACTIVE',
  });
  await waitFor(stateIs(a, 'cluster-b', 'ACTIVE'), {
    timeoutMs: 10_000,
    intervalMs: 20,
    what: 'A to be ACTIVE',
  });
}

const register = async (c: Cluster, body: unknown) =>
  expect((await c.api('PUT', '/v1/agent/service/register', body)).status).toBe(200);
const putConfig = async (c: Cluster, body: unknown) =>
  expect((await c.api('PUT', '/v1/config', body)).status).toBe(200);
const exportTo = (...services: string[]) => ({
  Kind: 'exported-services',
  Name: 'default',
  Services: services.map((Name) => ({ Name, Consumers: [{ Peer: 'cluster-b' }] })),
});

/** B's view of `api` imported from A. */
const importedApi = async (b: Cluster) => [
  ...((await b.api<any[]>('GET', '/v1/health/service/api?peer=cluster-a')).body ?? []),
  ...((await b.api<any[]>('GET', '/v1/health/service/api-sidecar-proxy?peer=cluster-a')).body ??
    []),
];

async function exportApi(a: Cluster): Promise<void> {
  await register(a, {
    ID: 'api-1',
    Name: 'api',
    Address: '10.0.1.1',
    Port: 8080,
    Check: { CheckID: 'api-1-ttl', TTL: '600s', Status: 'passing' },
    Connect: { SidecarService: {} },
  });
  await register(a, {
    ID: 'api-2',
    Name: 'api',
    Address: '10.0.1.2',
    Port: 8080,
    Check: { CheckID: 'api-2-ttl', TTL: '600s', Status: 'passing' },
  });
  await register(a, {
    ID: 'gw-1',
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Address: '10.0.0.2',
    Port: 8443,
    TaggedAddresses: { wan: { Address: '203.0.113.7', Port: 443 } },
  });
  await putConfig(a, { Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
  await putConfig(a, exportTo('api'));
}

let a: Cluster;
let b: Cluster;

beforeEach(async () => {
  [a, b] = await Promise.all([
    startCluster('dc-a', { caRotationPhaseMs: '800' }),
    startCluster('dc-b'),
  ]);
});

describe('peering replication between two servers', () => {
  it('generate-token → establish → both ACTIVE; an exported mesh service appears in B with its PeerMeta; health and unexport follow', async () => {
    await peer(a, b);
    await exportApi(a);
    const td = a.server.ca.trustDomain;
    const entries = await waitFor(
      async () => {
        const e = await importedApi(b);
        return e.length === 3 && e;
      },
      { timeoutMs: 10_000, intervalMs: 20, what: 'api and its synthetic sidecar in B' },
    );
    const byId = Object.fromEntries(entries.map((e: any) => [e.Service.ID, e.Service]));
    expect(Object.keys(byId).sort()).toEqual([
      'api-1',
      'api-2',
      'api-sidecar-proxy:203.0.113.7:443',
    ]);
    expect(byId['api-1']).toMatchObject({
      Service: 'api',
      Address: '10.0.1.1',
      Port: 8080,
      PeerName: 'cluster-a',
    });
    // Each name answers with its own instances, as Consul does.
    const apiOnly = (await b.api<any[]>('GET', '/v1/health/service/api?peer=cluster-a')).body.map(
      (e: any) => e.Service.Service,
    );
    expect(apiOnly).toEqual(['api', 'api']);
    expect(byId['api-sidecar-proxy:203.0.113.7:443']).toMatchObject({
      Kind: 'connect-proxy',
      Service: 'api-sidecar-proxy',
      Address: '203.0.113.7',
      Port: 443,
      PeerName: 'cluster-a',
      Connect: {
        PeerMeta: {
          SNI: [peeredServiceSni(td, 'cluster-b', { name: 'api' })],
          SpiffeID: [serviceSpiffeId(td, 'dc-a', { name: 'api' }), meshGatewaySpiffeId(td, 'dc-a')],
          Protocol: 'http',
        },
      },
    });
    expect((await b.api('GET', '/v1/catalog/services?peer=cluster-a')).body).toEqual({
      api: [],
      'api-sidecar-proxy': [],
    });
    expect((await b.api('GET', '/v1/health/service/api')).body).toEqual([]); // not a local service
    await waitFor(
      async () => (await peering(b, 'cluster-a'))?.StreamStatus.ImportedServices.join() === 'api',
      { timeoutMs: 10_000, what: 'B to count api imported' },
    );
    await waitFor(
      async () => (await peering(a, 'cluster-b'))?.StreamStatus.ExportedServices.join() === 'api',
      { timeoutMs: 10_000, what: 'A to count api exported' },
    );

    // An instance going critical in A leaves B's view.
    expect((await a.api('PUT', '/v1/agent/check/fail/api-2-ttl')).status).toBe(200);
    await waitFor(async () => !(await importedApi(b)).some((e: any) => e.Service.ID === 'api-2'), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'api-2 to leave B',
    });
    expect((await importedApi(b)).map((e: any) => e.Service.ID).sort()).toEqual([
      'api-1',
      'api-sidecar-proxy:203.0.113.7:443',
    ]);

    // Unexport: gone in B within 2 s.
    await putConfig(a, exportTo('other'));
    await waitFor(async () => (await importedApi(b)).length === 0, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'api to leave B after unexport',
    });
    expect((await b.api('GET', '/v1/catalog/services?peer=cluster-a')).body).toEqual({});
    // `other` is exported by name though nothing is registered under it (Consul does the same).
    await waitFor(
      async () => (await peering(b, 'cluster-a'))?.StreamStatus.ImportedServices.join() === 'other',
      { timeoutMs: 10_000, what: 'B to count only other' },
    );
  });

  it('the acceptor refuses a second stream (ALREADY_EXISTS) and one without the pinned client certificate (PERMISSION_DENIED), and the first stream carries on', async () => {
    await peer(a, b);
    const before = await peering(a, 'cluster-b');
    const p = b.server.peerings.read('cluster-a')!;
    const streamSecret = await b.server.peerings.streamSecretOf('cluster-a');
    const leaf = await b.server.ca.leaf(peeringIdentity(b.server.ca, 'dc-b'));
    const openWith = async (withCert: boolean, secret = streamSecret) => {
      const client = dialPeer({
        address: p.peerServerAddresses[0]!,
        caPems: p.peerCaPems,
        serverName: p.peerServerName,
        leaf: withCert ? leaf : undefined,
      });
      try {
        const stream = client.streamResources();
        const status = withDeadline(
          new Promise<grpc.StatusObject>((resolve) => {
            stream.on('status', resolve);
            stream.on('error', () => undefined);
            stream.on('data', () => undefined);
          }),
          { timeoutMs: 5_000, what: 'the refused stream to end' },
        );
        stream.write({
          payload: {
            $case: 'open',
            value: {
              peerId: p.peerId,
              streamSecret: secret,
              remote: { partition: 'default', datacenter: 'dc-b' },
            },
          },
        });
        return (await status).code;
      } finally {
        client.close();
      }
    };
    expect(await openWith(true)).toBe(grpc.status.ALREADY_EXISTS);
    expect(await openWith(false)).toBe(grpc.status.PERMISSION_DENIED);
    expect(await openWith(true, 'wrong')).toBe(grpc.status.PERMISSION_DENIED);
    const after = await peering(a, 'cluster-b');
    expect(after?.State).toBe('ACTIVE');
    expect(after?.PeerCAPems).toEqual(before?.PeerCAPems);
    // The first stream still replicates.
    await exportApi(a);
    await waitFor(async () => (await importedApi(b)).length === 3, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'api in B over the first stream',
    });
  });

  it('a CA rotation in A leaves B holding both roots, then only the new one', async () => {
    await peer(a, b);
    const oldRoot = a.server.ca.roots().roots[0]!.certPem;
    expect((await peering(b, 'cluster-a'))?.PeerCAPems).toEqual([oldRoot]);
    expect((await a.api('POST', '/v1/connect/ca/rotate')).status).toBe(200);
    const both = await waitFor(
      async () => {
        const pems = (await peering(b, 'cluster-a'))?.PeerCAPems ?? [];
        return pems.length === 2 && pems;
      },
      { timeoutMs: 5_000, intervalMs: 20, what: "B to hold both of A's roots" },
    );
    expect(both).toContain(oldRoot);
    const newRoot = both.find((p) => p !== oldRoot)!;
    await waitFor(
      async () => {
        const pems = (await peering(b, 'cluster-a'))?.PeerCAPems ?? [];
        return pems.length === 1 && pems[0] === newRoot;
      },
      { timeoutMs: 10_000, intervalMs: 20, what: "B to hold only A's new root" },
    );
    // The stream survived the rotation, and B still verifies A with the new root after a reconnect.
    expect((await peering(b, 'cluster-a'))?.State).toBe('ACTIVE');
  });

  it('a CA rotation in B (the dialer) re-pins its roots in A, so B reconnects with a leaf from its new root', async () => {
    running.splice(running.indexOf(b), 1);
    await b.server.stop();
    b = await startCluster('dc-b', { caRotationPhaseMs: '300' });
    await peer(a, b);
    const oldRoot = b.server.ca.roots().roots[0]!.certPem;
    expect((await b.api('POST', '/v1/connect/ca/rotate')).status).toBe(200);
    const newRoot = await waitFor(
      async () => {
        const pems = (await peering(a, 'cluster-b'))?.PeerCAPems ?? [];
        return pems.length === 1 && pems[0] !== oldRoot && pems[0];
      },
      { timeoutMs: 10_000, intervalMs: 20, what: "A to pin only B's new root" },
    );
    expect(b.server.ca.roots().roots.map((r) => r.certPem)).toEqual([newRoot]);
    // A restart of B dials with a leaf under the new root: only the re-pinned root lets it in.
    running.splice(running.indexOf(b), 1);
    await b.server.stop();
    b = await startCluster('dc-b', { caRotationPhaseMs: '300' }, b.dataDir);
    await waitFor(stateIs(b, 'cluster-a', 'ACTIVE'), {
      timeoutMs: 5_000,
      intervalMs: 20,
      what: 'the restarted B ACTIVE',
    });
  });

  it('delete on A → B shows TERMINATED and drops what it imported; a new token re-establishes', async () => {
    await peer(a, b);
    await exportApi(a);
    await waitFor(async () => (await importedApi(b)).length === 3, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'api in B',
    });

    expect((await a.api('DELETE', '/v1/peering/cluster-b')).status).toBe(200);
    await waitFor(stateIs(b, 'cluster-a', 'TERMINATED'), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'B to be TERMINATED',
    });
    await waitFor(async () => (await importedApi(b)).length === 0, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'B to drop the imported api',
    });
    await waitFor(async () => (await peering(a, 'cluster-b')) === undefined, {
      timeoutMs: 5_000,
      what: 'A to remove the peering',
    });
    expect((await peering(b, 'cluster-a'))?.StreamStatus.ImportedServices).toEqual([]);

    await peer(a, b);
    await waitFor(async () => (await importedApi(b)).length === 3, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'api in B again',
    });
  });

  it('delete on A while B is down: A stays DELETING until B reconnects, B is told and shows TERMINATED', async () => {
    await peer(a, b);
    await exportApi(a);
    await waitFor(async () => (await importedApi(b)).length === 3, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'api in B',
    });
    running.splice(running.indexOf(b), 1);
    await b.server.stop();
    await waitFor(stateIs(a, 'cluster-b', 'FAILING'), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'A to see the dialer gone',
    });
    expect((await a.api('DELETE', '/v1/peering/cluster-b')).status).toBe(200);
    expect((await peering(a, 'cluster-b'))?.State).toBe('DELETING');

    b = await startCluster('dc-b', {}, b.dataDir);
    await waitFor(stateIs(b, 'cluster-a', 'TERMINATED'), {
      timeoutMs: 5_000,
      intervalMs: 20,
      what: 'the restarted B to be told',
    });
    await waitFor(async () => (await peering(a, 'cluster-b')) === undefined, {
      timeoutMs: 5_000,
      what: 'A to remove the peering',
    });
    expect(await importedApi(b)).toEqual([]);
  });

  it('delete on B (the dialer) → A shows TERMINATED and stops exporting to it', async () => {
    await peer(a, b);
    await exportApi(a);
    await waitFor(async () => (await importedApi(b)).length === 3, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'api in B',
    });
    expect((await b.api('DELETE', '/v1/peering/cluster-a')).status).toBe(200);
    await waitFor(stateIs(a, 'cluster-b', 'TERMINATED'), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'A to be TERMINATED',
    });
    await waitFor(async () => (await peering(b, 'cluster-a')) === undefined, {
      timeoutMs: 5_000,
      what: 'B to remove the peering',
    });
    expect((await importedApi(b)).length).toBe(0);
  });
});
