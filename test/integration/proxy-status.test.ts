/**
 * `isthmus proxy-status` and `isthmus proxy-config` (issue 6) against a real in-process server:
 * a `web` sidecar with an upstream `api`, `api`'s sidecar and a mesh gateway, connected as
 * Envoy-like Delta clients that ACK everything; plus a proxy that NACKs CDS and one that never
 * ACKs. The real CLI runs against the HTTP API and its tables are compared with golden files.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyConfigJson, ProxyJson } from '../../src/api/xds-routes.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';
import { connectDelta, type DeltaEnvoy } from '../helpers/fake-envoy.js';
import { expectGoldenText } from '../helpers/golden.js';
import { startMeshServer, type MeshServer } from '../helpers/mesh-server.js';
import { runCli } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

let mesh: MeshServer;
let trustDomain: string;
let web: EnvoyLike;
let api: EnvoyLike;
let gw: EnvoyLike;
const raw: DeltaEnvoy[] = [];

const WAIT = { timeoutMs: 10_000 };

function withSidecar(name: string, port: number, upstreams: unknown[] = []) {
  return {
    ID: name,
    Name: name,
    Address: '127.0.0.1',
    Port: port,
    Check: { TTL: '600s', Status: 'passing' },
    Connect: { SidecarService: { Proxy: { Upstreams: upstreams } } },
  };
}

/** A lower-level Delta client with the proxy's own token (it ACKs or NACKs as the test says). */
async function connectRaw(proxyId: string): Promise<DeltaEnvoy> {
  const md = new grpc.Metadata();
  md.set('x-isthmus-token', await mesh.token(proxyId));
  const envoy = connectDelta(mesh.xds, proxyId, md);
  raw.push(envoy);
  return envoy;
}

const cli = (...args: string[]) => runCli([...args, '--http-addr', mesh.httpAddress]);

/**
 * Masks what differs run to run: the trust domain (`<uuid>.consul`), the CA's id and times, each by
 * a placeholder of the same length, so the columns the CLI aligned stay aligned in the golden file.
 */
function mask(text: string): string {
  return text
    .replaceAll(trustDomain, '00000000-0000-0000-0000-000000000000.consul')
    .replace(/isthmus CA [0-9a-f]{8}/g, 'isthmus CA 00000000')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/g, 'YYYY-MM-DDThh:mm:ss');
}

/** VERSION is 8 characters of a content hash: mask the column while keeping the alignment. */
function maskVersionColumn(text: string): string {
  const lines = text.split('\n');
  const at = lines[0]!.indexOf('VERSION');
  if (at < 0) return text;
  return lines
    .map((l, i) =>
      i === 0 || l.length < at + 8 || l.slice(at, at + 8) === '-       '
        ? l
        : `${l.slice(0, at)}<ver>   ${l.slice(at + 8)}`,
    )
    .join('\n');
}

async function proxies(): Promise<ProxyJson[]> {
  return (await mesh.api<ProxyJson[]>('GET', '/v1/xds/proxies')).body;
}

beforeAll(async () => {
  mesh = await startMeshServer();
  trustDomain = await mesh.trustDomain();
  await mesh.register(withSidecar('api', 9090));
  // An HTTP upstream gives web a route configuration too.
  await mesh.putConfig({ Kind: 'service-defaults', Name: 'orders', Protocol: 'http' });
  await mesh.register(withSidecar('orders', 7070));
  await mesh.register(
    withSidecar('web', 8080, [
      { DestinationName: 'api', LocalBindPort: 19090 },
      { DestinationName: 'orders', LocalBindPort: 19091 },
    ]),
  );
  await mesh.register({
    ID: 'gw-1',
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Address: '127.0.0.1',
    Port: 8443,
    TaggedAddresses: {
      lan: { Address: '127.0.0.1', Port: 8443 },
      wan: { Address: '203.0.113.7', Port: 443 },
    },
  });
  // Another datacenter's gateway: what gw-1 routes (a gateway with nothing to route holds nothing).
  await mesh.register({
    ID: 'gw-dc2',
    Name: 'mesh-gateway',
    Kind: 'mesh-gateway',
    Datacenter: 'dc2',
    Address: '10.2.0.5',
    Port: 8443,
    TaggedAddresses: { wan: { Address: '198.51.100.20', Port: 443 } },
  });
  [web, api, gw] = await Promise.all([
    mesh.connect('web-sidecar-proxy'),
    mesh.connect('api-sidecar-proxy'),
    mesh.connect('gw-1'),
  ]);
  await web.until(
    (e) =>
      e.names(TypeUrl.listener).some((n) => n.includes('19090')) &&
      e.names(TypeUrl.route).length > 0,
    "web's api and orders upstreams",
  );
  await api.until(
    (e) => e.names(TypeUrl.listener).some((n) => n.startsWith('public_listener')),
    "api's public listener",
  );
  await gw.until((e) => e.names(TypeUrl.listener).length > 0, "the gateway's listener");
  await Promise.all([web.settle(), api.settle(), gw.settle()]);
  await waitFor(
    async () =>
      (await proxies()).every((p) =>
        Object.values(p.Types).every((t) => t.status === 'SYNCED' || t.status === 'NONE'),
      ),
    { ...WAIT, what: 'every proxy SYNCED' },
  );
}, 30_000);

afterAll(async () => {
  for (const e of raw) e.close();
  await mesh?.close();
});

describe('isthmus proxy-status', () => {
  type Out = Awaited<ReturnType<typeof cli>>;
  let table: Out;
  let json: Out;
  let one: Out;

  // Each CLI run is a node process start: run the three side by side.
  beforeAll(async () => {
    [table, json, one] = await Promise.all([
      cli('proxy-status'),
      cli('proxy-status', '--format', 'json'),
      cli('proxy-status', 'web-sidecar-proxy'),
    ]);
  });

  it('shows one row per connected proxy, sorted, with its kind and SYNCED per type ("-" for none)', async () => {
    const out = table;
    expect(out).toMatchObject({ code: 0, stderr: '' });
    const { actual, expected } = expectGoldenText(
      'cli/proxy-status.txt',
      maskVersionColumn(out.stdout),
      mask,
    );
    expect(actual).toBe(expected);
  });

  it('--format json prints the API JSON with Kind, per-type versions and the overall version', async () => {
    const out = json;
    expect(out.code).toBe(0);
    const list = JSON.parse(out.stdout) as ProxyJson[];
    expect(list.map((p) => [p.ID, p.Kind])).toEqual([
      ['api-sidecar-proxy', 'sidecar'],
      ['gw-1', 'mesh-gateway'],
      ['web-sidecar-proxy', 'sidecar'],
    ]);
    const webStatus = list.find((p) => p.ID === 'web-sidecar-proxy')!;
    expect(webStatus.Types.CDS).toMatchObject({
      status: 'SYNCED',
      resources: 3,
      version: expect.stringMatching(/^[\w-]{22}$/),
    });
    expect(webStatus.Types.RDS).toMatchObject({
      status: 'SYNCED',
      resources: 1,
      version: expect.stringMatching(/^[\w-]{22}$/),
    });
    expect(list.find((p) => p.ID === 'api-sidecar-proxy')!.Types.RDS).toMatchObject({
      status: 'NONE',
      version: '',
    });
    // Both sidecars hold the same roots secret only, but different leaves: their SDS versions
    // differ.
    const apiStatus = list.find((p) => p.ID === 'api-sidecar-proxy')!;
    expect(apiStatus.Types.SDS!.version).not.toBe(webStatus.Types.SDS!.version);
    expect(webStatus.LastNack).toBeUndefined();
  });

  it('with an ID shows that proxy resource by resource', async () => {
    const out = one;
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^Proxy: +web-sidecar-proxy$/m);
    expect(out.stdout).toMatch(/^Kind: +sidecar$/m);
    expect(out.stdout).toMatch(/^LDS +api:127\.0\.0\.1:19090 +SYNCED /m);
    expect(out.stdout).toMatch(/^EDS +api\.default\.dc1\.internal\.\S+ +SYNCED /m);
  });
});

describe('proxy-status for proxies that NACK or never ACK', () => {
  let nacker: DeltaEnvoy;
  let silent: DeltaEnvoy;
  const nackMessage = 'cluster local_app: invalid connect_timeout\n(test NACK)';

  beforeAll(async () => {
    await mesh.register(withSidecar('cache', 6379));
    await mesh.register(withSidecar('db', 5432));
    // `cache` rejects its clusters and ACKs its listeners; `db` asks for both and never answers.
    nacker = await connectRaw('cache-sidecar-proxy');
    nacker.send(TypeUrl.cluster, { subscribe: ['*'] });
    nacker.send(TypeUrl.listener, { subscribe: ['*'] });
    const cds = await nacker.next();
    expect(cds.typeUrl).toBe(TypeUrl.cluster);
    nacker.nack(cds, nackMessage);
    const lds = await nacker.next();
    expect(lds.typeUrl).toBe(TypeUrl.listener);
    nacker.ack(lds);
    silent = await connectRaw('db-sidecar-proxy');
    silent.send(TypeUrl.cluster, { subscribe: ['*'] });
    silent.send(TypeUrl.listener, { subscribe: ['*'] });
    expect((await silent.next()).typeUrl).toBe(TypeUrl.cluster);
    await gw.settle();
    await waitFor(
      async () => {
        const byId = new Map((await proxies()).map((p) => [p.ID, p]));
        const originals = ['api-sidecar-proxy', 'gw-1', 'web-sidecar-proxy'].every((id) =>
          Object.values(byId.get(id)?.Types ?? {}).every(
            (t) => t.status === 'SYNCED' || t.status === 'NONE',
          ),
        );
        return (
          originals &&
          byId.get('cache-sidecar-proxy')?.Types.LDS?.status === 'SYNCED' &&
          byId.get('db-sidecar-proxy')?.Types.CDS?.status === 'STALE'
        );
      },
      { ...WAIT, what: 'the gateway synced again, cache LDS synced and db CDS sent' },
    );
  });

  it('shows NACKED with the NACK message, STALE for what is sent but not ACKed, NOT SENT for what waits behind it', async () => {
    const out = await cli('proxy-status');
    expect(out).toMatchObject({ code: 0, stderr: '' });
    const { actual, expected } = expectGoldenText(
      'cli/proxy-status-nack.txt',
      maskVersionColumn(out.stdout),
      mask,
    );
    expect(actual).toBe(expected);
    expect(out.stdout).toMatch(
      /^cache-sidecar-proxy +sidecar +NACKED +SYNCED .* CDS: cluster local_app: invalid connect_timeout \(test NACK\)$/m,
    );
    // db asked for clusters and listeners: clusters were sent (no ACK yet), listeners wait behind
    // them.
    expect(out.stdout).toMatch(/^db-sidecar-proxy +sidecar +STALE +NOT SENT /m);
  });

  it('the API keeps the NACK: type, message and time', async () => {
    const res = await mesh.api<ProxyJson>('GET', '/v1/xds/proxies/cache-sidecar-proxy');
    expect(res.status).toBe(200);
    expect(res.body.Kind).toBe('sidecar');
    expect(res.body.Types.CDS).toMatchObject({
      status: 'ERROR',
      lastNack: { message: nackMessage },
    });
    expect(res.body.LastNack).toMatchObject({
      Type: 'CDS',
      Message: nackMessage,
      At: expect.stringMatching(/^\d{4}-/),
    });
    expect(
      res.body.Resources.find((r) => r.Type === 'CDS' && r.Name === 'local_app'),
    ).toMatchObject({ Status: 'ERROR', Error: nackMessage });
  });
});

describe('isthmus proxy-config', () => {
  it("prints web's clusters, listeners, endpoints, routes and secrets as tables (the key only as [redacted])", async () => {
    const types = ['clusters', 'listeners', 'endpoints', 'routes', 'secrets'] as const;
    const outs = await Promise.all(
      types.map((type) => cli('proxy-config', 'web-sidecar-proxy', type)),
    );
    types.forEach((type, i) => {
      expect(outs[i]).toMatchObject({ code: 0, stderr: '' });
      const { actual, expected } = expectGoldenText(
        `cli/proxy-config-${type}.txt`,
        outs[i]!.stdout,
        mask,
      );
      expect(actual, type).toBe(expected);
    });
  });

  it('--format json gives the Envoy JSON: certificates, @type on resources and TLS contexts, no private key', async () => {
    const [secrets, clusters] = await Promise.all([
      cli('proxy-config', 'web-sidecar-proxy', 'secrets', '--format', 'json'),
      cli('proxy-config', 'web-sidecar-proxy', 'clusters', '--format', 'json'),
    ]);
    expect(secrets.code).toBe(0);
    expect(secrets.stdout).not.toContain('PRIVATE KEY');
    const list = JSON.parse(secrets.stdout) as any[];
    expect(list.map((s) => s['@type'])).toEqual([TypeUrl.secret, TypeUrl.secret]);
    const leaf = list.find((s) => s.tlsCertificate)!;
    expect(leaf.tlsCertificate.certificateChain.inlineString).toContain('BEGIN CERTIFICATE');
    expect(leaf.tlsCertificate.privateKey).toBe('[redacted]');
    const upstream = (JSON.parse(clusters.stdout) as any[]).find((c) => c.name.startsWith('api.'));
    expect(upstream['@type']).toBe(TypeUrl.cluster);
    expect(upstream.transportSocket.typedConfig['@type']).toBe(
      'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
    );
  });

  it('the HTTP API redacts private keys of every proxy and type', async () => {
    for (const id of ['web-sidecar-proxy', 'api-sidecar-proxy', 'gw-1']) {
      for (const type of ['clusters', 'listeners', 'endpoints', 'routes', 'secrets']) {
        const res = await mesh.api<ProxyConfigJson>('GET', `/v1/xds/proxies/${id}/config/${type}`);
        expect(res.status).toBe(200);
        expect(JSON.stringify(res.body)).not.toMatch(/PRIVATE KEY|LS0tLS1CRUdJTi/);
      }
    }
    const res = await mesh.api<ProxyConfigJson>(
      'GET',
      '/v1/xds/proxies/web-sidecar-proxy/config/secrets',
    );
    expect(res.body.Resources.map((r) => [r.Name.replace(trustDomain, '<td>'), r.Status])).toEqual([
      ['leaf:spiffe://<td>/ns/default/dc/dc1/svc/web', 'SYNCED'],
      ['roots:local', 'SYNCED'],
    ]);
  });

  it('takes xDS short names too (troubleshoot hints use them): eds lists endpoints with their health', async () => {
    const out = await cli('proxy-config', 'web-sidecar-proxy', 'eds');
    expect(out).toMatchObject({ code: 0, stderr: '' });
    expect(out.stdout).toMatch(
      /^CLUSTER +ENDPOINT +HEALTH\napi\.default\.dc1\.internal\.\S+ +127\.0\.0\.1:\d+ +HEALTHY\norders\.default\.dc1\.internal\.\S+ +127\.0\.0\.1:\d+ +HEALTHY$/,
    );
    const http = await mesh.api<ProxyConfigJson>(
      'GET',
      '/v1/xds/proxies/web-sidecar-proxy/config/CDS',
    );
    expect(http.status).toBe(200);
    expect(http.body.Type).toBe('clusters');
  });

  it('an unknown proxy is a one-line error (exit 1); a bad type a usage error naming the types (exit 2)', async () => {
    const [unknown, badType] = await Promise.all([
      cli('proxy-config', 'nope', 'clusters'),
      cli('proxy-config', 'web-sidecar-proxy', 'clustrs'),
    ]);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toBe(
      'isthmus: proxy "nope" is not connected to this server (`isthmus proxy-status` lists connected proxies) (HTTP 404)\n',
    );
    expect(badType.code).toBe(2);
    expect(badType.stderr.trim().split('\n')).toHaveLength(1);
    expect(badType.stderr).toContain('clusters, listeners, endpoints, routes, secrets');
    const http = await mesh.api<{ error: string; field: string }>(
      'GET',
      '/v1/xds/proxies/web-sidecar-proxy/config/clustrs',
    );
    expect(http).toEqual({
      status: 400,
      body: {
        error: 'type: "clustrs" is not one of clusters, listeners, endpoints, routes, secrets',
        field: 'type',
      },
    });
    const missing = await mesh.api<{ error: string }>('GET', '/v1/xds/proxies/nope');
    expect(missing.status).toBe(404);
    expect(missing.body.error).toContain('isthmus proxy-status');
  });
});
