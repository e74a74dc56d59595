/**
 * The CA and proxy-token HTTP endpoints and their CLI commands, against a server in this process.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/log.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { cleanupProcesses, runCli, tempDir } from '../helpers/process.js';

const servers: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  await cleanupProcesses();
});
afterAll(cleanupProcesses);

const httpToken = 'test-http-token-0123456789';

async function start(flags: Record<string, string> = {}): Promise<RunningServer> {
  const config = loadServerConfig({
    flags: {
      dataDir: tempDir(),
      httpAddr: '127.0.0.1:0',
      xdsAddr: '127.0.0.1:0',
      peeringAddr: '127.0.0.1:0',
      ...flags,
    },
    env: {},
  });
  const server = await startServer(config, { logger: silentLogger() });
  servers.push(server);
  return server;
}

async function call(
  server: RunningServer,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://127.0.0.1:${server.httpPort}${path}`, { method, headers });
  return { status: res.status, body: await res.json() };
}

const cli = (server: RunningServer, ...args: string[]) =>
  runCli([...args, '--http-addr', `127.0.0.1:${server.httpPort}`]);

describe('GET /v1/connect/ca/roots and POST /v1/connect/ca/rotate', () => {
  it("serves the roots in Consul's shape and starts a rotation once", async () => {
    const server = await start();
    const { status, body } = await call(server, 'GET', '/v1/connect/ca/roots');
    expect(status).toBe(200);
    const roots = server.ca.roots();
    expect(body).toEqual({
      ActiveRootID: roots.activeRootId,
      TrustDomain: `${server.ca.clusterId}.consul`,
      Roots: [
        {
          ID: roots.activeRootId,
          Name: expect.stringMatching(/^isthmus CA [0-9a-f]{8}$/),
          SerialNumber: expect.any(Number),
          SigningKeyID: expect.stringMatching(/^([0-9a-f]{2}:){19}[0-9a-f]{2}$/),
          NotBefore: roots.roots[0]!.notBefore.toISOString(),
          NotAfter: roots.roots[0]!.notAfter.toISOString(),
          RootCert: roots.roots[0]!.certPem,
          IntermediateCerts: [],
          Active: true,
          CreateIndex: expect.any(Number),
          ModifyIndex: expect.any(Number),
        },
      ],
    });
    expect(roots.activeRootId).toMatch(/^([0-9a-f]{2}:){19}[0-9a-f]{2}$/);

    expect(await call(server, 'POST', '/v1/connect/ca/rotate')).toEqual({ status: 200, body: {} });
    const during = (await call(server, 'GET', '/v1/connect/ca/roots')).body as {
      ActiveRootID: string;
      Roots: { ID: string; Active: boolean }[];
    };
    expect(during.ActiveRootID).toBe(roots.activeRootId);
    expect(during.Roots.map((r) => r.Active)).toEqual([true, false]);
    const again = await call(server, 'POST', '/v1/connect/ca/rotate');
    expect(again.status).toBe(412);
    expect(again.body).toEqual({ error: expect.stringContaining('already in progress') });
  });

  it('with --http-token: roots stay public; rotate and every ACL endpoint need the token', async () => {
    const server = await start({ httpToken });
    const auth = { authorization: `Bearer ${httpToken}` };
    expect((await call(server, 'GET', '/v1/connect/ca/roots')).status).toBe(200);
    expect((await call(server, 'POST', '/v1/connect/ca/rotate')).status).toBe(403);
    expect((await call(server, 'GET', '/v1/acl/tokens')).status).toBe(403);
    expect((await call(server, 'POST', '/v1/acl/token')).status).toBe(403);
    expect(server.ca.roots().roots).toHaveLength(1);
    expect((await call(server, 'POST', '/v1/connect/ca/rotate', auth)).status).toBe(200);
    expect((await call(server, 'GET', '/v1/acl/tokens', auth)).body).toEqual([]);
  });
});

describe('isthmus ca / isthmus acl (CLI)', () => {
  it('ca roots (pretty, json, --pem) and ca rotate', async () => {
    const server = await start();
    const roots = server.ca.roots();
    const [pretty, json, pem] = await Promise.all([
      cli(server, 'ca', 'roots'),
      cli(server, 'ca', 'roots', '--format', 'json'),
      cli(server, 'ca', 'roots', '--pem'),
    ]);
    expect(pretty).toMatchObject({ code: 0, stderr: '' });
    expect(pretty.stdout).toContain(`Trust domain: ${roots.trustDomain}`);
    expect(pretty.stdout).toMatch(
      new RegExp(`^${roots.activeRootId}\\s+isthmus CA \\S+\\s+yes\\s`, 'm'),
    );
    expect(JSON.parse(json.stdout)).toEqual(
      (await call(server, 'GET', '/v1/connect/ca/roots')).body,
    );
    expect(new X509Certificate(pem.stdout).subjectAltName).toBe(
      `URI:spiffe://${roots.trustDomain}`,
    );

    const rotated = await cli(server, 'ca', 'rotate');
    expect(rotated).toMatchObject({ code: 0, stderr: '' });
    expect(rotated.stdout).toMatch(/^CA root rotation started: root \S+ is trusted now/);
    expect(server.ca.roots().roots).toHaveLength(2);
    const refused = await cli(server, 'ca', 'rotate');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^isthmus: a CA root rotation is already in progress.*\(HTTP 412\)\n$/,
    );
  });

  it('acl token create / list / delete', async () => {
    const server = await start();
    const created = await cli(server, 'acl', 'token', 'create', '--proxy-id', 'web-sidecar-proxy');
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    const json = JSON.parse(
      (await cli(server, 'acl', 'token', 'create', '--proxy-id', 'api', '--format', 'json')).stdout,
    ) as Record<string, string>;
    expect(Object.keys(json).sort()).toEqual(['AccessorID', 'CreateTime', 'ProxyID', 'SecretID']);
    const list = await cli(server, 'acl', 'token', 'list');
    expect(list.stdout).toMatch(/^ACCESSOR ID\s+PROXY ID\s+CREATED$/m);
    expect(list.stdout).toContain('web-sidecar-proxy');
    expect(list.stdout).not.toContain(created.stdout);
    const deleted = await cli(server, 'acl', 'token', 'delete', json.AccessorID!);
    expect(deleted).toMatchObject({ code: 0, stdout: `Deleted proxy token ${json.AccessorID}` });
    const missing = await cli(server, 'acl', 'token', 'delete', json.AccessorID!);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^isthmus: .*no proxy token with AccessorID.*\(HTTP 404\)\n$/);
    expect((await runCli(['acl', 'token', 'create'])).code).toBe(2);
  });

  it('passes --token to a server with --http-token', async () => {
    const server = await start({ httpToken });
    const denied = await cli(server, 'acl', 'token', 'create', '--proxy-id', 'web');
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^isthmus: Permission denied/);
    const ok = await cli(
      server,
      'acl',
      'token',
      'create',
      '--proxy-id',
      'web',
      '--token',
      httpToken,
    );
    expect(ok.code).toBe(0);
  });
});
