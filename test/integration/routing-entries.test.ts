/**
 * `service-splitter` and `service-router` through the HTTP API (docs/architecture.md §5b): a bad
 * entry is a 400 naming the field and the fix and changes nothing; a good one rebuilds exactly
 * the proxies whose upstreams use it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MeshServer, startMeshServer } from '../helpers/mesh-server.js';

function withSidecar(name: string, port: number, upstreams: unknown[] = []) {
  return {
    Name: name,
    Address: '127.0.0.1',
    Port: port,
    Connect: { SidecarService: { Proxy: { Upstreams: upstreams } } },
  };
}

/** Sidecar snapshots built so far (`isthmus_snapshot_builds_total`). */
async function sidecarBuilds(mesh: MeshServer): Promise<number> {
  await mesh.server.snapshots.settled();
  const text = await (await fetch(`http://${mesh.httpAddress}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('isthmus_snapshot_builds_total{kind="connect-proxy",result="ok"}'));
  return Number(line?.split(' ').pop() ?? 0);
}

describe('service-splitter and service-router over the HTTP API', () => {
  let mesh: MeshServer;

  beforeAll(async () => {
    mesh = await startMeshServer();
    await mesh.putConfig({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' });
    await mesh.register(withSidecar('api', 9090));
    await mesh.register(withSidecar('db', 5432));
    await mesh.register(
      withSidecar('web', 8080, [{ DestinationName: 'api', LocalBindPort: 19090 }]),
    );
    await mesh.register(
      withSidecar('batch', 8081, [{ DestinationName: 'db', LocalBindPort: 15432 }]),
    );
  });

  afterAll(async () => {
    await mesh?.close();
  });

  it('a splitter on a tcp service is a 400 naming the field and the fix, and nothing is written', async () => {
    const res = await mesh.api('PUT', '/v1/config', {
      Kind: 'service-splitter',
      Name: 'db',
      Splits: [{ Weight: 100 }],
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain(
      `db's protocol is \\"tcp\\"; a service-splitter needs HTTP: first write a service-defaults entry for db with Protocol \\"http\\"`,
    );
    expect((await mesh.api('GET', '/v1/config/service-splitter/db')).status).toBe(404);
  });

  it('writing a splitter for api rebuilds web only (its upstream), not batch', async () => {
    const before = await sidecarBuilds(mesh);
    const res = await mesh.api('PUT', '/v1/config', {
      Kind: 'service-splitter',
      Name: 'api',
      Splits: [{ Weight: 100 }],
    });
    expect(res.status).toBe(200);
    expect(await sidecarBuilds(mesh)).toBe(before + 1);
    const read = await mesh.api('GET', '/v1/config/service-splitter/api');
    expect(read.body).toMatchObject({
      Kind: 'service-splitter',
      Name: 'api',
      Splits: [{ Weight: 100 }],
    });
  });
});
