/**
 * CSDS on the xDS port (issue 6 review, issue 18): it must not hand out proxies' private keys, it
 * follows the HTTP API's rule for xDS-status reads (`--http-token`, or an API token with scope
 * `read`, `operator`, or `service:<name>` for that service's proxies), it is served over the port's
 * TLS, and it never runs a client's regex on a backtracking engine. A real in-process server with `--http-token` and a connected sidecar.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import {
  ClientStatusDiscoveryServiceClient,
  ClientStatusDiscoveryServiceService,
  ClientStatusResponse,
  type ClientStatusRequest,
} from '../../src/gen/envoy/service/status/v3/csds.js';
import type { StringMatcher } from '../../src/gen/envoy/type/matcher/v3/string.js';
import { xdsChannelCredentials } from '../../src/xds/tls.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';
import { startMeshServer, type MeshServer } from '../helpers/mesh-server.js';
import { withDeadline } from '../helpers/wait.js';

const HTTP_TOKEN = 'csds-test-token-0123456789';
const PROXY = 'web-sidecar-proxy';

let mesh: MeshServer;
let web: EnvoyLike;
let csds: ClientStatusDiscoveryServiceClient;

function metadata(headers: Record<string, string>): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return md;
}

const bearer = () => metadata({ authorization: `Bearer ${HTTP_TOKEN}` });

function request(
  nodeId: StringMatcher['matchPattern'] = { $case: 'exact', value: PROXY },
): ClientStatusRequest {
  return {
    nodeMatchers: [{ nodeId: { matchPattern: nodeId, ignoreCase: false }, nodeMetadatas: [] }],
    excludeResourceContents: false,
  };
}

/** FetchClientStatus; resolves with the response or the gRPC error (code and details). */
function fetchStatus(
  md: grpc.Metadata,
  req: ClientStatusRequest = request(),
): Promise<ClientStatusResponse | grpc.ServiceError> {
  return withDeadline(
    new Promise((resolve) => csds.fetchClientStatus(req, md, (err, res) => resolve(err ?? res!))),
    { timeoutMs: 5_000, what: 'CSDS FetchClientStatus' },
  );
}

/** One StreamClientStatus exchange: the first response, or the status the stream ended with. */
function streamStatus(
  md: grpc.Metadata,
  req: ClientStatusRequest = request(),
): Promise<ClientStatusResponse | grpc.StatusObject> {
  const call = csds.streamClientStatus(md);
  const answer = new Promise<ClientStatusResponse | grpc.StatusObject>((resolve) => {
    call.on('data', (res: ClientStatusResponse) => resolve(res));
    call.on('status', (s: grpc.StatusObject) => resolve(s));
    call.on('error', () => undefined);
  });
  call.write(req);
  return withDeadline(answer, { timeoutMs: 5_000, what: 'CSDS StreamClientStatus' }).finally(() =>
    call.cancel(),
  );
}

/** FetchClientStatus's response exactly as it came over the wire. */
function fetchRawBytes(md: grpc.Metadata): Promise<Buffer> {
  const method = ClientStatusDiscoveryServiceService.fetchClientStatus;
  return withDeadline(
    new Promise((resolve, reject) =>
      csds.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        (b: Buffer) => b,
        request(),
        md,
        (err, res) => (err ? reject(err) : resolve(res!)),
      ),
    ),
    { timeoutMs: 5_000, what: 'CSDS FetchClientStatus (raw)' },
  );
}

function isError(
  r: ClientStatusResponse | grpc.ServiceError | grpc.StatusObject,
): r is grpc.ServiceError | grpc.StatusObject {
  return 'code' in r;
}

beforeAll(async () => {
  mesh = await startMeshServer({ httpToken: HTTP_TOKEN });
  await mesh.register({
    ID: 'web',
    Name: 'web',
    Address: '127.0.0.1',
    Port: 8080,
    Check: { TTL: '600s', Status: 'passing' },
    Connect: { SidecarService: {} },
  });
  web = await mesh.connect(PROXY);
  await web.until((e) => e.names(TypeUrl.secret).length >= 2, "web's leaf and roots secrets");
  // Over the xDS port's TLS, as every client of the port.
  const { credentials, options } = xdsChannelCredentials(mesh.server.xdsTls());
  csds = new ClientStatusDiscoveryServiceClient(
    `127.0.0.1:${mesh.server.xdsPort}`,
    credentials,
    options,
  );
}, 30_000);

afterAll(async () => {
  csds?.close();
  await mesh?.close();
});

describe('CSDS resource contents', () => {
  it('show Secrets with the private key "[redacted]" and the certificate intact', async () => {
    const bytes = await fetchRawBytes(bearer());
    expect(bytes.toString('latin1')).not.toContain('PRIVATE KEY');
    const res = ClientStatusResponse.decode(bytes);
    const secrets = res.config[0]!.genericXdsConfigs.filter((g) => g.typeUrl === TypeUrl.secret);
    expect(secrets.length).toBeGreaterThanOrEqual(2);
    const leaves = secrets
      .map((g) => Secret.decode(g.xdsConfig!.value))
      .filter((s) => s.type?.$case === 'tlsCertificate');
    expect(leaves).toHaveLength(1);
    const cert = leaves[0]!.type!.$case === 'tlsCertificate' ? leaves[0]!.type!.value : undefined;
    expect(cert?.privateKey?.specifier).toEqual({ $case: 'inlineString', value: '[redacted]' });
    const chain = cert?.certificateChain?.specifier;
    expect(chain?.$case === 'inlineString' && chain.value).toContain('-----BEGIN CERTIFICATE-----');
    // What the proxy itself received still has its key.
    expect(web.json(TypeUrl.secret, leaves[0]!.name)).toContain('PRIVATE KEY');
  });
});

describe('CSDS with --http-token', () => {
  it('FetchClientStatus without the token, or with a wrong one, is PERMISSION_DENIED', async () => {
    const none = await fetchStatus(new grpc.Metadata());
    expect(isError(none) && none.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(isError(none) && none.details).toContain('x-isthmus-token');
    const wrong = await fetchStatus(metadata({ authorization: `Bearer ${HTTP_TOKEN}x` }));
    expect(isError(wrong) && wrong.code).toBe(grpc.status.PERMISSION_DENIED);
    // A proxy's own ACL token is not the HTTP API token.
    const proxyToken = await fetchStatus(metadata({ 'x-isthmus-token': await mesh.token(PROXY) }));
    expect(isError(proxyToken) && proxyToken.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('FetchClientStatus with the token, as Bearer or x-isthmus-token, answers', async () => {
    for (const md of [bearer(), metadata({ 'x-isthmus-token': HTTP_TOKEN })]) {
      const res = await fetchStatus(md);
      if (isError(res)) throw new Error(`CSDS failed: ${res.code} ${res.details}`);
      expect(res.config.map((c) => c.node?.id)).toEqual([PROXY]);
    }
  });

  it('StreamClientStatus ends with PERMISSION_DENIED without the token and answers with it', async () => {
    const none = await streamStatus(new grpc.Metadata());
    expect(isError(none) && none.code).toBe(grpc.status.PERMISSION_DENIED);
    const wrong = await streamStatus(metadata({ 'x-isthmus-token': 'not-the-token-0123456789' }));
    expect(isError(wrong) && wrong.code).toBe(grpc.status.PERMISSION_DENIED);
    const ok = await streamStatus(bearer());
    if (isError(ok)) throw new Error(`CSDS stream failed: ${ok.code} ${ok.details}`);
    expect(ok.config.map((c) => c.node?.id)).toEqual([PROXY]);
  });
});

describe('CSDS node matchers', () => {
  const redos = { $case: 'safeRegex', value: { regex: '((.*)*)*z' } } as const;

  it('a safe_regex node id matcher is INVALID_ARGUMENT, answered at once (never run on a backtracking engine)', async () => {
    const started = performance.now();
    const res = await fetchStatus(bearer(), request(redos));
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(isError(res) && res.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(isError(res) && res.details).toBe(
      'node_matchers[0].node_id.safe_regex is not supported; use exact, prefix, suffix or contains',
    );
    const streamed = await streamStatus(bearer(), request(redos));
    expect(isError(streamed) && streamed.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('prefix and case-insensitive suffix matchers still select the proxy', async () => {
    const prefix = await fetchStatus(bearer(), request({ $case: 'prefix', value: 'web-' }));
    expect(!isError(prefix) && prefix.config.map((c) => c.node?.id)).toEqual([PROXY]);
    const req = request();
    req.nodeMatchers[0]!.nodeId = {
      matchPattern: { $case: 'suffix', value: '-SIDECAR-PROXY' },
      ignoreCase: true,
    };
    const suffix = await fetchStatus(bearer(), req);
    expect(!isError(suffix) && suffix.config.map((c) => c.node?.id)).toEqual([PROXY]);
    const other = await fetchStatus(
      bearer(),
      request({ $case: 'exact', value: 'api-sidecar-proxy' }),
    );
    expect(!isError(other) && other.config).toEqual([]);
  });
});

describe('CSDS with scoped API tokens (src/acl/api-tokens.ts)', () => {
  async function apiToken(scope: string): Promise<{ secret: string; accessor: string }> {
    const res = await mesh.api<{ SecretID: string; AccessorID: string }>(
      'POST',
      '/v1/acl/api-token',
      { Scope: scope },
    );
    expect(res.status).toBe(200);
    return { secret: res.body.SecretID, accessor: res.body.AccessorID };
  }

  /** The proxy IDs a token sees, listing every proxy (no node matcher). */
  async function seen(secret: string): Promise<string[]> {
    const all: ClientStatusRequest = { nodeMatchers: [], excludeResourceContents: true };
    const res = await fetchStatus(metadata({ authorization: `Bearer ${secret}` }), all);
    if (isError(res)) throw new Error(`CSDS failed: ${res.code} ${res.details}`);
    return res.config.map((c) => c.node?.id ?? '');
  }

  it("read and operator tokens see every proxy; service:<name> only that service's; peering none", async () => {
    await mesh.register({
      ID: 'api',
      Name: 'api',
      Address: '127.0.0.1',
      Port: 9090,
      Check: { TTL: '600s', Status: 'passing' },
      Connect: { SidecarService: {} },
    });
    const api = await mesh.connect('api-sidecar-proxy');
    await api.until((e) => e.names(TypeUrl.secret).length >= 2, "api's secrets");
    const both = ['api-sidecar-proxy', PROXY];
    expect(await seen((await apiToken('read')).secret)).toEqual(both);
    expect(await seen((await apiToken('operator')).secret)).toEqual(both);
    expect(await seen((await apiToken('service:web')).secret)).toEqual([PROXY]);
    expect(await seen((await apiToken('service:api')).secret)).toEqual(['api-sidecar-proxy']);
    expect(await seen((await apiToken('service:db')).secret)).toEqual([]);
    const peering = await apiToken('peering');
    const refused = await fetchStatus(metadata({ authorization: `Bearer ${peering.secret}` }));
    expect(isError(refused) && refused.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(isError(refused) && refused.details).toBe(
      "Permission denied: CSDS needs a token with scope read or operator (or service:<name> for that service's proxies); this token has scope peering",
    );
    const streamed = await streamStatus(metadata({ 'x-isthmus-token': peering.secret }));
    expect(isError(streamed) && streamed.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('a revoked API token is refused', async () => {
    const token = await apiToken('read');
    expect(await seen(token.secret)).toContain(PROXY);
    expect(
      (await mesh.api('DELETE', `/v1/acl/api-token/${encodeURIComponent(token.accessor)}`)).status,
    ).toBe(200);
    const res = await fetchStatus(metadata({ authorization: `Bearer ${token.secret}` }));
    expect(isError(res) && res.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(isError(res) && res.details).toContain('the HTTP API token is not valid');
  });
});
