/**
 * The xDS port serves TLS by default (issue 18; docs/architecture.md §1, "The xDS port"): a
 * plaintext client, a client verifying another name and a client trusting other roots are all
 * refused before a stream opens; the operator's extra names verify too; CSDS goes over the same
 * TLS; connected streams survive a CA rotation and new ones connect with the new roots. Plaintext
 * only with `--xds-plaintext`, refused off loopback without `--xds-plaintext-allow-remote`, and
 * logged as a warning.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { createRoot } from '../../src/ca/x509.js';
import { ClientStatusDiscoveryServiceClient } from '../../src/gen/envoy/service/status/v3/csds.js';
import { xdsChannelCredentials, type XdsClientTls } from '../../src/xds/tls.js';
import { TypeUrl } from '../../src/xds/types.js';
import { adsClient, connectDelta } from '../helpers/fake-envoy.js';
import { type MeshServer, startMeshServer } from '../helpers/mesh-server.js';
import { cleanupProcesses, parseJsonLine, runCli, startServerProcess } from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await cleanupProcesses();
});

async function mesh(flags: Record<string, string> = {}): Promise<MeshServer> {
  const m = await startMeshServer(flags);
  cleanups.push(() => m.close());
  await m.register({
    Name: 'web',
    Port: 8080,
    Address: '127.0.0.1',
    Connect: { SidecarService: {} },
  });
  return m;
}

/**
 * Opens a Delta stream for web's sidecar with its token over `tls` (undefined: plaintext) and
 * resolves with the first CDS response, or the status the stream ended with.
 */
async function firstResponse(
  m: MeshServer,
  tls: XdsClientTls | undefined,
): Promise<{ ok: true } | { ok: false; status: grpc.StatusObject }> {
  const client = adsClient(`127.0.0.1:${m.server.xdsPort}`, tls);
  const md = new grpc.Metadata();
  md.set('x-isthmus-token', await m.token('web-sidecar-proxy'));
  const envoy = connectDelta(client, 'web-sidecar-proxy', md);
  try {
    envoy.send(TypeUrl.cluster, { subscribe: ['*'] });
    return await withDeadline(
      Promise.race([
        envoy.next(30_000).then(() => ({ ok: true as const })),
        envoy.ended.then((status) => ({ ok: false as const, status })),
      ]),
      { timeoutMs: 30_000, what: 'a CDS response or the end of the stream' },
    );
  } finally {
    envoy.close();
    client.close();
  }
}

describe('xDS over TLS (the default)', () => {
  it('serves a client that verifies xds.isthmus.internal against the cluster roots', async () => {
    const m = await mesh();
    const tls = m.server.xdsTls();
    expect(tls?.serverName).toBe('xds.isthmus.internal');
    expect(await firstResponse(m, tls)).toEqual({ ok: true });
    // What `isthmus envoy bootstrap` reads, public like the CA roots.
    const info = await m.api<Record<string, unknown>>('GET', '/v1/xds/server');
    expect(info).toEqual({
      status: 200,
      body: { TLS: true, ServerName: 'xds.isthmus.internal', CaPem: tls?.caPem },
    });
  });

  it('refuses a plaintext client: the stream fails UNAVAILABLE and the proxy never connects', async () => {
    const m = await mesh();
    const result = await firstResponse(m, undefined);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(result.status.details).toMatch(/No connection established.*Failed to connect/);
    expect((await m.api<unknown[]>('GET', '/v1/xds/proxies')).body).toEqual([]);
  });

  it('refuses a client verifying another name, or trusting other roots', async () => {
    const m = await mesh();
    const tls = m.server.xdsTls()!;
    const wrongName = await firstResponse(m, { ...tls, serverName: 'xds.example.com' });
    expect(wrongName.ok).toBe(false);
    if (!wrongName.ok) {
      expect(wrongName.status.code).toBe(grpc.status.UNAVAILABLE);
      expect(wrongName.status.details).toMatch(/xds\.example\.com.*not in the cert's altnames/);
    }
    const other = await createRoot({
      rootUri: 'spiffe://11111111-2222-4333-8444-555555555555.consul',
      name: 'another cluster',
      now: Date.now(),
      validityMs: 3_600_000,
    });
    const otherRoots = await firstResponse(m, { ...tls, caPem: other.certPem });
    expect(otherRoots.ok).toBe(false);
    if (!otherRoots.ok) {
      expect(otherRoots.status.code).toBe(grpc.status.UNAVAILABLE);
      expect(otherRoots.status.details).toMatch(
        /unable to verify the first certificate|self.signed|issuer/i,
      );
    }
  });

  it('puts the operator names of --xds-tls-san on the certificate too', async () => {
    const m = await mesh({ xdsTlsSan: 'xds.dc1.example.com,ISTHMUS.example.org' });
    const tls = m.server.xdsTls()!;
    expect(await firstResponse(m, { ...tls, serverName: 'xds.dc1.example.com' })).toEqual({
      ok: true,
    });
    expect(await firstResponse(m, { ...tls, serverName: 'isthmus.example.org' })).toEqual({
      ok: true,
    });
  });

  it('serves CSDS over the same TLS, and not in plaintext', async () => {
    const m = await mesh();
    const csds = (tls: XdsClientTls | undefined) => {
      const { credentials, options } = xdsChannelCredentials(tls);
      const client = new ClientStatusDiscoveryServiceClient(
        `127.0.0.1:${m.server.xdsPort}`,
        credentials,
        options,
      );
      cleanups.push(() => client.close());
      return new Promise<grpc.ServiceError | null>((resolve) =>
        client.fetchClientStatus({ nodeMatchers: [], excludeResourceContents: true }, (err) =>
          resolve(err),
        ),
      );
    };
    expect(await csds(m.server.xdsTls())).toBeNull();
    expect((await csds(undefined))?.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('keeps a connected stream across a CA rotation; new streams connect with the new roots only', async () => {
    const m = await mesh({ caRotationPhaseMs: '300' });
    const before = m.server.xdsTls()!;
    const web = await m.connect('web-sidecar-proxy');
    await web.until((e) => e.names(TypeUrl.cluster).length > 0, 'web clusters');
    expect((await m.api('POST', '/v1/connect/ca/rotate')).status).toBe(200);
    // Rotation done: one root again, and not the one before.
    const after = await waitFor(
      () => {
        const now = m.server.xdsTls()!;
        return now.caPem !== before.caPem && now.caPem.match(/BEGIN CERT/g)?.length === 1 && now;
      },
      { timeoutMs: 30_000, what: 'the rotation to retire the old root' },
    );
    // The stream opened before the rotation still gets pushes.
    await m.register({
      Name: 'api',
      Port: 9090,
      Address: '127.0.0.1',
      Connect: { SidecarService: {} },
    });
    await m.putConfig({
      Kind: 'service-intentions',
      Name: 'api',
      Sources: [{ Name: 'web', Action: 'allow' }],
    });
    await m.register({
      Name: 'web',
      Port: 8080,
      Address: '127.0.0.1',
      Connect: {
        SidecarService: {
          Proxy: { Upstreams: [{ DestinationName: 'api', LocalBindPort: 19090 }] },
        },
      },
    });
    await web.until(
      (e) => e.names(TypeUrl.cluster).some((n) => n.startsWith('api.')),
      'the api cluster pushed on the pre-rotation stream',
      30_000,
    );
    // A new stream verifies the re-issued certificate with the new roots; the old roots alone no
    // longer do (docs/architecture.md §1: write bootstraps again during a rotation).
    expect(await firstResponse(m, after)).toEqual({ ok: true });
    expect((await firstResponse(m, before)).ok).toBe(false);
  });
});

describe('--xds-plaintext', () => {
  it('serves plaintext when asked, and logs a warning at start', async () => {
    const server = await startServerProcess(['--xds-plaintext']);
    const warning = server.stdoutLines
      .map(parseJsonLine)
      .find((l) => l?.msg?.toString().startsWith('the xDS port serves plaintext'));
    expect(warning?.level).toBe(40);
    expect(await server.xdsTls()).toBeUndefined();
  });

  it('is refused on a non-loopback address: one line, exit 2', async () => {
    const run = await runCli([
      'server',
      '--xds-plaintext',
      '--xds-addr',
      '0.0.0.0:0',
      '--http-addr',
      '127.0.0.1:0',
      '--peering-addr',
      '127.0.0.1:0',
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /^isthmus: --xds-plaintext: --xds-addr 0\.0\.0\.0:0 is not a loopback address, .*add --xds-plaintext-allow-remote if the network is otherwise protected\n$/,
    );
  });

  it('is allowed off loopback with --xds-plaintext-allow-remote, still with the warning', async () => {
    const server = await startServerProcess([
      '--xds-plaintext',
      '--xds-plaintext-allow-remote',
      '--xds-addr',
      '0.0.0.0:0',
    ]);
    expect(server.stdoutLines.some((l) => l.includes('the xDS port serves plaintext'))).toBe(true);
    expect(await server.xdsTls()).toBeUndefined();
  });
});
