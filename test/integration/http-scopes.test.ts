/**
 * Scoped HTTP API tokens (issue 18): every route the server serves, walked with every kind of
 * caller, against one expectation table. A route the table does not name fails the test, so no
 * route is left unprotected; so does a table row no route matches.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpApi } from '../../src/api/http.js';
import { requireRouteAccess } from '../../src/api/route-access.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { type ApiServer, startApiServer } from '../helpers/api-server.js';
import { runCli } from '../helpers/process.js';

const httpToken = 'scopes-http-token-0123456789';
const operatorAuth = { authorization: `Bearer ${httpToken}` };

type Caller =
  | 'none'
  | 'invalid'
  | 'proxy'
  | 'operator'
  | 'read'
  | 'peering'
  | 'service:api'
  | 'service:other';
const callers: readonly Caller[] = [
  'none',
  'invalid',
  'proxy',
  'operator',
  'read',
  'peering',
  'service:api',
  'service:other',
];

/** Who is let through (anything but 401/403); everyone else must be refused. */
type Allowed = 'anyone' | readonly Caller[];
interface Row {
  readonly path: string;
  readonly body?: unknown;
  readonly allowed: Allowed;
  /** A server-sent-events stream: only its status is read, then the request is aborted. */
  readonly stream?: true;
}

const apiRegistration = {
  ID: 'api-1',
  Name: 'api',
  Port: 8080,
  Connect: { SidecarService: {} },
  Checks: [{ CheckID: 'api-1-ttl', TTL: '30s' }],
};
const otherRegistration = { ID: 'other-1', Name: 'other', Port: 9090 };

const op: Caller[] = ['operator'];
const readers: Caller[] = ['operator', 'read'];
const peeringVerb: Caller[] = ['operator', 'peering'];
const peeringRead: Caller[] = ['operator', 'read', 'peering'];
const apiWrite: Caller[] = ['operator', 'service:api'];
const apiRead: Caller[] = ['operator', 'read', 'service:api'];

/**
 * `METHOD route pattern` → a concrete request and who may make it. HEAD routes follow their GET.
 */
const table: Readonly<Record<string, Row>> = {
  'GET /healthz': { path: '/healthz', allowed: 'anyone' },
  'GET /readyz': { path: '/readyz', allowed: 'anyone' },
  'GET /metrics': { path: '/metrics', allowed: 'anyone' },
  'GET /v1/xds/proxies': { path: '/v1/xds/proxies', allowed: readers },
  'GET /v1/operator/servers': { path: '/v1/operator/servers', allowed: readers },
  'GET /v1/xds/csds': { path: '/v1/xds/csds', allowed: readers },
  'GET /v1/xds/server': { path: '/v1/xds/server', allowed: 'anyone' },
  'GET /v1/xds/proxies/:id': { path: '/v1/xds/proxies/api-1-sidecar-proxy', allowed: apiRead },
  'GET /v1/xds/proxies/:id/config/:type': {
    path: '/v1/xds/proxies/api-1-sidecar-proxy/config/clusters',
    allowed: apiRead,
  },
  'PUT /v1/agent/service/register': {
    path: '/v1/agent/service/register',
    body: apiRegistration,
    allowed: apiWrite,
  },
  'PUT /v1/agent/service/deregister/:id': {
    path: '/v1/agent/service/deregister/api-1',
    allowed: apiWrite,
  },
  'PUT /v1/agent/check/pass/:checkId': {
    path: '/v1/agent/check/pass/api-1-ttl',
    allowed: apiWrite,
  },
  'PUT /v1/agent/check/warn/:checkId': {
    path: '/v1/agent/check/warn/api-1-ttl',
    allowed: apiWrite,
  },
  'PUT /v1/agent/check/fail/:checkId': {
    path: '/v1/agent/check/fail/api-1-ttl',
    allowed: apiWrite,
  },
  'PUT /v1/agent/check/update/:checkId': {
    path: '/v1/agent/check/update/api-1-ttl',
    body: { Status: 'passing' },
    allowed: apiWrite,
  },
  'GET /v1/catalog/services': { path: '/v1/catalog/services', allowed: 'anyone' },
  'GET /v1/catalog/service/:name': { path: '/v1/catalog/service/api', allowed: 'anyone' },
  'GET /v1/health/service/:name': { path: '/v1/health/service/api', allowed: 'anyone' },
  'GET /v1/health/connect/:name': { path: '/v1/health/connect/api', allowed: 'anyone' },
  'PUT /v1/config': {
    path: '/v1/config',
    body: { Kind: 'service-defaults', Name: 'api', Protocol: 'http' },
    allowed: op,
  },
  'GET /v1/config/:kind': { path: '/v1/config/service-defaults', allowed: 'anyone' },
  'GET /v1/config/:kind/:name': { path: '/v1/config/service-defaults/api', allowed: 'anyone' },
  'DELETE /v1/config/:kind/:name': { path: '/v1/config/service-defaults/api', allowed: op },
  'GET /v1/connect/ca/roots': { path: '/v1/connect/ca/roots', allowed: 'anyone' },
  'POST /v1/connect/ca/rotate': { path: '/v1/connect/ca/rotate', allowed: op },
  'GET /v1/catalog/datacenters': { path: '/v1/catalog/datacenters', allowed: 'anyone' },
  'GET /v1/internal/federation-states': {
    path: '/v1/internal/federation-states',
    allowed: readers,
  },
  'POST /v1/acl/token': {
    path: '/v1/acl/token',
    body: { ProxyID: 'api-1-sidecar-proxy' },
    allowed: op,
  },
  'GET /v1/acl/tokens': { path: '/v1/acl/tokens', allowed: op },
  'DELETE /v1/acl/token/:accessorId': { path: '/v1/acl/token/no-such-accessor', allowed: op },
  'POST /v1/acl/api-token': { path: '/v1/acl/api-token', body: { Scope: 'read' }, allowed: op },
  'GET /v1/acl/api-tokens': { path: '/v1/acl/api-tokens', allowed: op },
  'DELETE /v1/acl/api-token/:accessorId': {
    path: '/v1/acl/api-token/no-such-accessor',
    allowed: op,
  },
  'POST /v1/peering/token': {
    path: '/v1/peering/token',
    body: { PeerName: 'east' },
    allowed: peeringVerb,
  },
  'POST /v1/peering/establish': {
    path: '/v1/peering/establish',
    body: { PeerName: 'west', PeeringToken: 'not-a-token' },
    allowed: peeringVerb,
  },
  'GET /v1/peerings': { path: '/v1/peerings', allowed: peeringRead },
  'GET /v1/peering/:name': { path: '/v1/peering/east', allowed: peeringRead },
  'DELETE /v1/peering/:name': { path: '/v1/peering/nobody', allowed: peeringVerb },
  'GET /v1/exported-services': { path: '/v1/exported-services', allowed: 'anyone' },
  'GET /v1/troubleshoot/peering/:name': {
    path: '/v1/troubleshoot/peering/east',
    allowed: peeringRead,
  },
  'GET /v1/troubleshoot/proxy/:id': {
    path: '/v1/troubleshoot/proxy/api-1-sidecar-proxy',
    allowed: apiRead,
  },
  'GET /v1/troubleshoot/upstream/:id/:upstream': {
    path: '/v1/troubleshoot/upstream/api-1-sidecar-proxy/db',
    allowed: apiRead,
  },
  // The web UI (issue 17): its assets are public, its data is what a read token sees.
  'GET /ui': { path: '/ui', allowed: 'anyone' },
  'GET /ui/': { path: '/ui/', allowed: 'anyone' },
  'GET /ui/*': { path: '/ui/app.js', allowed: 'anyone' },
  'GET /v1/ui/overview': { path: '/v1/ui/overview', allowed: readers },
  'GET /v1/ui/services': { path: '/v1/ui/services', allowed: readers },
  'GET /v1/ui/topology': { path: '/v1/ui/topology', allowed: readers },
  'GET /v1/ui/why': { path: '/v1/ui/why?source=other&destination=api', allowed: readers },
  'GET /v1/ui/events': { path: '/v1/ui/events', allowed: readers, stream: true },
};

let api: ApiServer;
const secrets = new Map<Caller, string | undefined>();

beforeAll(async () => {
  api = await startApiServer({ flags: { httpToken } });
  secrets.set('none', undefined);
  secrets.set('invalid', 'not-a-token-0123456789abcdef');
  secrets.set('operator', httpToken);
  for (const scope of ['read', 'peering', 'service:api', 'service:other'] as const) {
    const res = await api.call('POST', '/v1/acl/api-token', { Scope: scope }, operatorAuth);
    expect(res.status, scope).toBe(200);
    secrets.set(scope, res.json.SecretID);
  }
  const proxy = await api.call(
    'POST',
    '/v1/acl/token',
    { ProxyID: 'api-1-sidecar-proxy' },
    operatorAuth,
  );
  secrets.set('proxy', proxy.json.SecretID);
});

afterAll(() => api?.stop());

/** api-1 (with its sidecar and TTL check) and other-1 registered, whatever the last call did. */
async function fixtures(): Promise<void> {
  for (const body of [apiRegistration, otherRegistration]) {
    const res = await api.call('PUT', '/v1/agent/service/register', body, operatorAuth);
    expect(res.status).toBe(200);
  }
}

/** The status of a streaming answer, without waiting for a body that never ends. */
async function streamStatus(
  method: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; text: string }> {
  const abort = new AbortController();
  const res = await fetch(api.base + path, { method, headers, signal: abort.signal });
  abort.abort();
  return { status: res.status, text: res.statusText };
}

function headersOf(caller: Caller): Record<string, string> {
  const secret = secrets.get(caller);
  return secret === undefined ? {} : { 'x-isthmus-token': secret };
}

describe('scope matrix', () => {
  it('names every route the server serves, and only those', () => {
    const served = api.server.httpRoutes.filter((r) => r.method !== 'HEAD');
    const keys = served.map((r) => `${r.method} ${r.url}`);
    expect(keys.filter((k) => !(k in table))).toEqual([]);
    expect(Object.keys(table).filter((k) => !keys.includes(k))).toEqual([]);
    // Every GET also answers HEAD (fastify's default), checked like its GET below.
    const heads = api.server.httpRoutes.filter((r) => r.method === 'HEAD').map((r) => r.url);
    expect(heads.sort()).toEqual(
      served
        .filter((r) => r.method === 'GET')
        .map((r) => r.url)
        .sort(),
    );
  });

  it('lets through exactly the callers the table allows, on every route and method', async () => {
    const mismatches: string[] = [];
    for (const route of api.server.httpRoutes) {
      const key = `${route.method === 'HEAD' ? 'GET' : route.method} ${route.url}`;
      const row = table[key];
      if (!row) continue; // reported by the test above
      for (const caller of callers) {
        await fixtures();
        const res = row.stream
          ? await streamStatus(route.method, row.path, headersOf(caller))
          : await api.call(route.method, row.path, row.body, headersOf(caller));
        const refused = res.status === 401 || res.status === 403;
        const allowed = row.allowed === 'anyone' || row.allowed.includes(caller);
        if (refused === allowed)
          mismatches.push(`${route.method} ${row.path} as ${caller}: ${res.status} ${res.text}`);
      }
    }
    expect(mismatches).toEqual([]);
  });
});

describe('scoped tokens', () => {
  it('a token without the scope gets 403 naming the scope needed; none or an invalid one keeps the old answer', async () => {
    const read = headersOf('read');
    const refused = await api.call('POST', '/v1/peering/token', { PeerName: 'x' }, read);
    expect(refused.status).toBe(403);
    expect(refused.json).toEqual({
      error:
        'Permission denied: this request needs a token with scope peering or operator; this token has scope read',
      scope: 'peering',
    });
    await fixtures();
    const other = await api.call(
      'PUT',
      '/v1/agent/service/deregister/api-1',
      undefined,
      headersOf('service:other'),
    );
    expect(other.json).toMatchObject({ scope: 'service:api' });
    expect(api.server.catalog.instance('api-1')).toBeDefined();
    const none = await api.call('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'x' });
    expect(none.status).toBe(403);
    expect(none.json).toEqual({
      error: expect.stringMatching(/^Permission denied: this request needs the HTTP API token; /),
    });
  });

  it('service:<name> registers only its service and its sidecar, never over another service', async () => {
    const token = headersOf('service:api');
    const register = (body: unknown) => api.call('PUT', '/v1/agent/service/register', body, token);
    await fixtures();
    expect((await register({ ID: 'api-2', Name: 'api', Port: 1 })).status).toBe(200);
    const sidecar = {
      ID: 'api-2-sidecar-proxy',
      Name: 'api-sidecar-proxy',
      Kind: 'connect-proxy',
      Address: '127.0.0.1',
      Port: 21001,
      Proxy: { DestinationServiceName: 'api', DestinationServiceID: 'api-2', LocalServicePort: 1 },
    };
    expect((await register(sidecar)).status).toBe(200);
    // Another service's name, another service's sidecar, a gateway, or another's instance ID.
    for (const body of [
      { Name: 'other', Port: 1 },
      {
        ...sidecar,
        Name: 'other-sidecar-proxy',
        Proxy: { ...sidecar.Proxy, DestinationServiceName: 'other' },
      },
      { ...sidecar, Name: 'api-gw', Kind: 'mesh-gateway' },
      { ID: 'other-1', Name: 'api', Port: 1 },
    ]) {
      expect((await register(body)).status, JSON.stringify(body)).toBe(403);
    }
    expect(api.server.catalog.instance('other-1')?.name).toBe('other');
    // A body that does not parse but names its service gets the validation error, not a 403.
    expect((await register({ Name: 'api', Port: 'x' })).status).toBe(400);
  });

  it('revoking a token refuses it at once; lists never carry a secret', async () => {
    const created = await api.call(
      'POST',
      '/v1/acl/api-token',
      { Scope: 'read', Description: 'dashboards' },
      operatorAuth,
    );
    const { AccessorID, SecretID } = created.json;
    expect(created.json).toMatchObject({ Scope: 'read', Description: 'dashboards' });
    const auth = { authorization: `Bearer ${SecretID}` };
    expect((await api.call('GET', '/v1/xds/proxies', undefined, auth)).status).toBe(200);
    const list = await api.call('GET', '/v1/acl/api-tokens', undefined, operatorAuth);
    expect(list.text).not.toContain(SecretID);
    expect(list.json).toContainEqual({
      AccessorID,
      Scope: 'read',
      Description: 'dashboards',
      CreateTime: expect.any(String),
    });
    const revoked = await api.call(
      'DELETE',
      `/v1/acl/api-token/${AccessorID}`,
      undefined,
      operatorAuth,
    );
    expect(revoked.status).toBe(200);
    expect((await api.call('GET', '/v1/xds/proxies', undefined, auth)).status).toBe(403);
    expect(
      (await api.call('DELETE', `/v1/acl/api-token/${AccessorID}`, undefined, operatorAuth)).status,
    ).toBe(404);
  });

  it('refuses a bad scope naming the allowed ones', async () => {
    for (const Scope of ['admin', 'service:', 'service:Bad_Name', 42]) {
      const res = await api.call('POST', '/v1/acl/api-token', { Scope }, operatorAuth);
      expect(res.status, String(Scope)).toBe(400);
      expect(res.json.field).toBe('Scope');
    }
  });

  it('acl api-token create / list / revoke (CLI)', async () => {
    const env = { ISTHMUS_HTTP_ADDR: api.base, ISTHMUS_HTTP_TOKEN: httpToken };
    const cli = (...args: string[]) => runCli(args, { env });
    const created = await cli(
      'acl',
      'api-token',
      'create',
      '--scope',
      'service:web',
      '--format',
      'json',
    );
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const json = JSON.parse(created.stdout) as {
      AccessorID: string;
      SecretID: string;
      Scope: string;
    };
    expect(json.Scope).toBe('service:web');
    const list = await cli('acl', 'api-token', 'list');
    expect(list.stdout).toMatch(new RegExp(`^${json.AccessorID}\\s+service:web\\s`, 'm'));
    expect(list.stdout).not.toContain(json.SecretID);
    const revoked = await cli('acl', 'api-token', 'revoke', json.AccessorID);
    expect(revoked).toMatchObject({ code: 0, stdout: `Revoked API token ${json.AccessorID}` });
    const bad = await cli('acl', 'api-token', 'create', '--scope', 'root');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /^isthmus: Scope: must be one of operator, read, peering or service:<name> \(HTTP 400\)\n$/,
    );
  });
});

describe('no route left unprotected', () => {
  it('a route that declares no access stops the API from starting', async () => {
    const app = createHttpApi({
      logger: silentLogger(),
      metrics: new Metrics(),
      xds: { proxyStatus: () => [] },
      health: { ready: () => true },
    });
    requireRouteAccess(app);
    app.post('/v1/forgotten', async () => ({}));
    await expect(app.ready()).rejects.toThrow(/POST \/v1\/forgotten declares no access/);
  });
});
