/**
 * Requests forwarded across WAN federation (docs/architecture.md §6c), between three real servers
 * (dc1 the primary, dc2 and dc3 secondaries): `?dc=` reads answered by another datacenter's
 * servers, a config entry write on a secondary applied on the primary and replicated back, and the
 * errors a user meets (a bad `dc`, the primary down). Each datacenter's "mesh gateway" is an SNI
 * router (test/helpers/sni-router.ts) registered with `consul-wan-federation`: it sends
 * `server.<own dc>.consul` to its server's federation port and every other datacenter's name to
 * that datacenter's router, as a real gateway does; no server is ever given another datacenter's
 * server address, so every forwarded request is counted at the routers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { federationIdentity } from '../../src/federation/server.js';
import { dialFederation } from '../../src/federation/tls.js';
import type {
  ForwardRequest,
  ForwardResponse,
} from '../../src/gen/isthmus/federation/v1/federation.js';
import type { RunningServer } from '../../src/server.js';
import { startFederationServer } from '../helpers/federation-server.js';
import { type SniRouter, startSniRouter } from '../helpers/sni-router.js';
import { cleanupProcesses, runCli } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

const dcs = ['dc1', 'dc2', 'dc3'] as const;
type Dc = (typeof dcs)[number];

describe('WAN federation forwards ?dc= reads and secondary config writes through the gateways', () => {
  const dirs: string[] = [];
  const servers = new Map<Dc, RunningServer>();
  const routers = new Map<Dc, SniRouter>();
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'isthmus-fedfwd-'));
    dirs.push(d);
    return d;
  };
  const server = (dc: Dc) => servers.get(dc)!;
  const url = (dc: Dc, path: string) => `http://127.0.0.1:${server(dc).httpPort}${path}`;
  // Each datacenter has its own operator token (tokens are per datacenter, never replicated).
  const tokenOf = (dc: Dc) => `operator-token-of-${dc}-0123456789abcdef`;
  const call = async (
    dc: Dc,
    method: string,
    path: string,
    body?: unknown,
    /** null: no token. */
    token: string | null = tokenOf(dc),
  ) => {
    const res = await fetch(url(dc, path), {
      method,
      headers: {
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as unknown };
  };
  const routedTo = (dc: Dc) =>
    dcs.reduce((n, via) => n + (routers.get(via)!.routed.get(`server.${dc}.consul`) ?? 0), 0);

  async function startDatacenter(dc: Dc, secretFile: string): Promise<void> {
    const router = routers.get(dc)!;
    const s = await startFederationServer(dc, dir(), {
      federationSecretFile: secretFile,
      httpToken: tokenOf(dc),
      ...(dc === 'dc1' ? {} : { primaryGateways: `127.0.0.1:${routers.get('dc1')!.port}` }),
    });
    servers.set(dc, s);
    router.routes.set(`server.${dc}.consul`, `127.0.0.1:${s.federationPort}`);
    const res = await call(dc, 'PUT', '/v1/agent/service/register', {
      Name: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Address: '127.0.0.1',
      Port: router.port,
      Meta: { 'consul-wan-federation': '1' },
    });
    expect(res.status).toBe(200);
  }

  beforeAll(async () => {
    for (const dc of dcs) routers.set(dc, await startSniRouter());
    for (const from of dcs)
      for (const to of dcs)
        if (from !== to)
          routers
            .get(from)!
            .routes.set(`server.${to}.consul`, `127.0.0.1:${routers.get(to)!.port}`);
    const secretFile = join(dir(), 'secret');
    writeFileSync(secretFile, 'federation-secret-of-the-forwarding-test\n', { mode: 0o600 });
    for (const dc of dcs) await startDatacenter(dc, secretFile);
    for (const dc of dcs) {
      const res = await call(dc, 'PUT', '/v1/agent/service/register', {
        Name: 'api',
        ID: `api-${dc}`,
        Address: `10.0.0.${dcs.indexOf(dc) + 1}`,
        Port: 8080,
        Tags: [dc],
      });
      expect(res.status).toBe(200);
    }
    // Every datacenter knows the others (their federation states reached it through dc1).
    await waitFor(
      async () => {
        for (const dc of dcs) {
          const known = await call(dc, 'GET', '/v1/catalog/datacenters');
          if (JSON.stringify(known.body) !== JSON.stringify(dcs)) return false;
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'every datacenter to list dc1, dc2 and dc3' },
    );
  }, 120_000);

  afterAll(async () => {
    for (const dc of [...dcs].reverse()) await servers.get(dc)?.stop();
    await cleanupProcesses();
    for (const r of routers.values()) await r.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("answers ?dc=dc1 on dc3 with dc1's instances, through the gateways", async () => {
    const before = routedTo('dc1');
    const remote = await call('dc3', 'GET', '/v1/health/service/api?dc=dc1');
    expect(remote.status).toBe(200);
    const addresses = (remote.body as { Service: { Address: string } }[]).map(
      (e) => e.Service.Address,
    );
    expect(addresses).toEqual(['10.0.0.1']);
    expect(routedTo('dc1')).toBeGreaterThan(before);

    const catalog = await call('dc3', 'GET', '/v1/catalog/service/api?dc=dc1');
    expect((catalog.body as { ServiceAddress: string }[]).map((e) => e.ServiceAddress)).toEqual([
      '10.0.0.1',
    ]);
    const services = await call('dc3', 'GET', '/v1/catalog/services?dc=dc1');
    expect(services.body).toMatchObject({ api: ['dc1'] });

    // Secondary to secondary, and the primary to a secondary: through their gateways too.
    const fromDc2 = await call('dc2', 'GET', '/v1/health/service/api?dc=dc3');
    expect((fromDc2.body as { Service: { Address: string } }[])[0]?.Service.Address).toBe(
      '10.0.0.3',
    );
    const fromDc1 = await call('dc1', 'GET', '/v1/health/service/api?dc=dc2');
    expect((fromDc1.body as { Service: { Address: string } }[])[0]?.Service.Address).toBe(
      '10.0.0.2',
    );
    // Our own datacenter answers locally.
    const own = await call('dc3', 'GET', '/v1/health/service/api?dc=dc3');
    expect((own.body as { Service: { Address: string } }[])[0]?.Service.Address).toBe('10.0.0.3');
  }, 60_000);

  it('refuses an unknown or malformed dc with a 400 naming dc and the known datacenters', async () => {
    const unknown = await call('dc3', 'GET', '/v1/health/service/api?dc=dc9');
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ field: 'dc' });
    expect((unknown.body as { error: string }).error).toContain('dc1, dc2, dc3');
    const malformed = await call('dc3', 'GET', '/v1/catalog/services?dc=DC_1');
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ field: 'dc' });
  });

  it('applies a config write made on dc2 on the primary, answers once dc2 holds it, and replicates it to dc3', async () => {
    const entry = { Kind: 'service-defaults', Name: 'api', Protocol: 'http' };
    const put = await call('dc2', 'PUT', '/v1/config', entry);
    expect(put).toEqual({ status: 200, body: true });
    // Read-your-writes: dc2 answered after it applied the primary's state holding the entry.
    expect(server('dc2').catalog.configEntry('service-defaults', 'api')).toMatchObject({
      protocol: 'http',
    });
    expect(server('dc1').catalog.configEntry('service-defaults', 'api')).toBeDefined();
    await waitFor(
      async () => server('dc3').catalog.configEntry('service-defaults', 'api') !== undefined,
      { timeoutMs: 20_000, intervalMs: 50, what: 'the entry written on dc2 to reach dc3' },
    );

    // The primary's validation answers the caller, field and all.
    const bad = await call('dc2', 'PUT', '/v1/config', { ...entry, Protocol: 'carrier-pigeon' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ field: 'Protocol' });

    // Each of a burst of writes is readable on dc2 as soon as it is answered.
    for (let i = 0; i < 10; i++) {
      const name = `burst-${i}`;
      expect((await call('dc2', 'PUT', '/v1/config', { ...entry, Name: name })).status).toBe(200);
      expect(server('dc2').catalog.configEntry('service-defaults', name)).toBeDefined();
    }

    const del = await call('dc2', 'DELETE', '/v1/config/service-defaults/api');
    expect(del).toEqual({ status: 200, body: true });
    expect(server('dc2').catalog.configEntry('service-defaults', 'api')).toBeUndefined();
    expect(server('dc1').catalog.configEntry('service-defaults', 'api')).toBeUndefined();

    const elsewhere = await call('dc2', 'PUT', '/v1/config?dc=dc3', entry);
    expect(elsewhere.status).toBe(400);
    expect(elsewhere.body).toMatchObject({ field: 'dc' });
  }, 60_000);

  it("authorizes a forwarded write with the receiving datacenter's token before anything is forwarded", async () => {
    const entry = { Kind: 'service-defaults', Name: 'guarded', Protocol: 'http' };
    const before = routedTo('dc1');
    const anonymous = await call('dc2', 'PUT', '/v1/config', entry, null);
    expect(anonymous.status).toBe(403);
    // dc1's operator token means nothing in dc2.
    const foreign = await call('dc2', 'PUT', '/v1/config', entry, tokenOf('dc1'));
    expect(foreign.status).toBe(403);
    expect(routedTo('dc1')).toBe(before);
    expect(server('dc1').catalog.configEntry('service-defaults', 'guarded')).toBeUndefined();
    // Reads stay open to anyone, forwarded or not.
    const read = await call('dc2', 'GET', '/v1/catalog/services?dc=dc1', undefined, null);
    expect(read.status).toBe(200);
  });

  it('runs only forwardable operations, and only for a federation server of another datacenter', async () => {
    const dc2 = server('dc2');
    const forward = async (
      leaf: Awaited<ReturnType<RunningServer['ca']['leaf']>>,
      req: Omit<ForwardRequest, 'datacenter'>,
    ) => {
      const client = dialFederation({
        address: `127.0.0.1:${routers.get('dc2')!.port}`,
        serverName: 'server.dc1.consul',
        trust: { rootPems: dc2.ca.roots().roots.map((r) => r.certPem) },
        leaf,
      });
      try {
        return await new Promise<ForwardResponse>((resolve, reject) =>
          client.forward({ datacenter: 'dc1', ...req }, (err, res) =>
            err ? reject(err) : resolve(res),
          ),
        );
      } finally {
        client.close();
      }
    };
    const serverLeaf = await dc2.ca.leaf(federationIdentity(dc2.ca, 'dc2', 'server-1'));
    const token = await forward(serverLeaf, {
      method: 'PUT',
      path: '/v1/acl/token',
      body: Buffer.from('{}'),
    });
    expect(token.status).toBe(403);
    expect(token.body.toString()).toContain('not an operation another datacenter may forward');
    // A service's leaf of the same trust domain is no federation server.
    const serviceLeaf = await dc2.ca.leaf({
      spiffeId: `spiffe://${dc2.ca.trustDomain}/ns/default/dc/dc2/svc/api`,
    });
    await expect(
      forward(serviceLeaf, { method: 'GET', path: '/v1/catalog/services', body: Buffer.alloc(0) }),
    ).rejects.toMatchObject({ details: expect.stringContaining('federation server certificate') });
  });

  it('isthmus services list --dc lists another datacenter; an unknown one is a one-line error', async () => {
    const env = {
      ISTHMUS_HTTP_ADDR: `127.0.0.1:${server('dc3').httpPort}`,
      ISTHMUS_HTTP_TOKEN: tokenOf('dc3'),
    };
    const listed = await runCli(['services', 'list', '--dc', 'dc1', '--format', 'json'], { env });
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toContainEqual(
      expect.objectContaining({ ID: 'api-dc1', Address: '10.0.0.1' }),
    );
    const unknown = await runCli(['services', 'list', '--dc', 'dc9'], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(
      /^isthmus: dc: unknown datacenter "dc9"; known datacenters: dc1, dc2, dc3 .*\(HTTP 400\)\n$/,
    );
  }, 60_000);

  it('with the primary down a secondary write answers 503 naming dc1 and writes nothing', async () => {
    await server('dc1').stop();
    servers.delete('dc1');
    const entry = { Kind: 'service-defaults', Name: 'while-down', Protocol: 'http' };
    const res = await call('dc2', 'PUT', '/v1/config', entry);
    expect(res.status).toBe(503);
    const error = (res.body as { error: string }).error;
    expect(error).toContain('primary datacenter dc1');
    expect(error).toContain('unreachable');
    expect(server('dc2').catalog.configEntry('service-defaults', 'while-down')).toBeUndefined();
    // A read of dc1 fails the same way, and dc3 still answers for itself.
    const read = await call('dc2', 'GET', '/v1/catalog/services?dc=dc1');
    expect(read.status).toBe(503);
    expect((read.body as { error: string }).error).toContain('dc1');
    const dc3 = await call('dc2', 'GET', '/v1/catalog/services?dc=dc3');
    expect(dc3.status).toBe(200);
  }, 60_000);
});
