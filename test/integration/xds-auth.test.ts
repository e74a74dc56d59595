/**
 * Issue 3 §3: proxies authenticate on the xDS port with `x-isthmus-token`, bound to one proxy ID.
 * A stream without a valid token gets UNAUTHENTICATED when it opens (issue 18); a valid token of
 * another proxy gets PERMISSION_DENIED on the first request. Neither sees any resource.
 */
import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { type ProxyTokens, openProxyTokens, xdsAuth } from '../../src/acl/index.js';
import { loadServerConfig } from '../../src/config/index.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { openLmdbStore, type Store } from '../../src/store/index.js';
import { TypeUrl } from '../../src/xds/types.js';
import { adsClient, connectDelta, connectSotw } from '../helpers/fake-envoy.js';
import { secret } from '../helpers/resources.js';
import { waitFor, withDeadline } from '../helpers/wait.js';
import { startXds, type XdsHarness } from '../helpers/xds-harness.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-xds-auth-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function tokenMetadata(secretId?: string): grpc.Metadata {
  const md = new grpc.Metadata();
  if (secretId !== undefined) md.set('x-isthmus-token', secretId);
  return md;
}

describe('xDS admission with proxy tokens (xDS server + token index)', () => {
  let h: XdsHarness;
  let tokens: ProxyTokens;

  async function setup(): Promise<void> {
    const store: Store = await openLmdbStore(tempDir());
    tokens = await openProxyTokens(store, { logger: silentLogger() });
    h = await startXds(xdsAuth('token', tokens, silentLogger()));
    cleanups.push(
      () => store.close(),
      () => tokens.close(),
      () => h.close(),
    );
    // Each proxy has a private key waiting for it: a refused stream must not see it.
    h.cache.setProxyResources('web', [secret('leaf:web', 'web-key')]);
    h.cache.setProxyResources('api', [secret('leaf:api', 'api-key')]);
  }

  async function expectRefused(
    metadata: grpc.Metadata,
    code: grpc.status,
    api: 'sotw' | 'delta' = 'delta',
  ): Promise<string> {
    const envoy =
      api === 'delta'
        ? connectDelta(h.client, 'web', metadata)
        : connectSotw(h.client, 'web', metadata);
    if ('send' in envoy) envoy.send(TypeUrl.secret, { subscribe: ['leaf:web'] });
    else envoy.request(TypeUrl.secret, ['leaf:web']);
    const status = await withDeadline(envoy.ended, {
      timeoutMs: 5_000,
      what: 'the refused stream to end',
    });
    expect(status.code).toBe(code);
    expect(await envoy.quietFor(100)).toBe(true);
    expect(h.server.proxyStatus()).toEqual([]);
    return status.details;
  }

  it("refuses no token, a wrong token and another proxy's token, before any resource", async () => {
    await setup();
    const api = await tokens.create('api');
    const { UNAUTHENTICATED, PERMISSION_DENIED } = grpc.status;
    expect(await expectRefused(tokenMetadata(), UNAUTHENTICATED)).toMatch(
      /needs an x-isthmus-token/,
    );
    expect(await expectRefused(tokenMetadata(), UNAUTHENTICATED, 'sotw')).toMatch(
      /needs an x-isthmus-token/,
    );
    expect(
      await expectRefused(tokenMetadata('5f0c2d7e-1111-2222-3333-444455556666'), UNAUTHENTICATED),
    ).toMatch(/not a valid proxy token/);
    const details = await expectRefused(tokenMetadata(api.secretId), PERMISSION_DENIED);
    expect(details).toContain('"api"');
    expect(details).toContain('"web"');
    expect(details).not.toContain(api.secretId);
  });

  it("admits the proxy's own token and serves its resources", async () => {
    await setup();
    const web = await tokens.create('web');
    const envoy = connectDelta(h.client, 'web', tokenMetadata(web.secretId));
    envoy.send(TypeUrl.secret, { subscribe: ['leaf:web'] });
    const response = await envoy.next();
    expect(response.resources.map((r) => r.name)).toEqual(['leaf:web']);
    envoy.close();
  });
});

describe('xDS auth in the server (startServer)', () => {
  async function start(
    dataDir: string,
    flags: Record<string, string> = {},
    logger = silentLogger(),
  ): Promise<RunningServer> {
    const config = loadServerConfig({
      flags: {
        dataDir,
        httpAddr: '127.0.0.1:0',
        xdsAddr: '127.0.0.1:0',
        peeringAddr: '127.0.0.1:0',
        ...flags,
      },
      env: {},
    });
    const server = await startServer(config, { logger });
    cleanups.push(() => server.stop());
    return server;
  }

  async function api<T>(
    server: RunningServer,
    method: string,
    url: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}${url}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as T };
  }

  function connect(server: RunningServer, nodeId: string, secretId?: string) {
    const client = adsClient(`127.0.0.1:${server.xdsPort}`, server.xdsTls());
    cleanups.push(() => client.close());
    const envoy = connectDelta(client, nodeId, tokenMetadata(secretId));
    envoy.send(TypeUrl.cluster, { subscribe: ['*'] });
    cleanups.push(() => envoy.close());
    return envoy;
  }

  const proxies = async (server: RunningServer) =>
    (await api<{ ID: string }[]>(server, 'GET', '/v1/xds/proxies')).body.map((p) => p.ID);

  it('is on by default: token create/list/delete over HTTP decide who gets a stream, across a restart', async () => {
    const dataDir = tempDir();
    let server = await start(dataDir);
    expect(
      (await withDeadline(connect(server, 'web').ended, { timeoutMs: 5_000, what: 'refusal' }))
        .code,
    ).toBe(grpc.status.UNAUTHENTICATED);

    const created = await api<{
      AccessorID: string;
      SecretID: string;
      ProxyID: string;
      CreateTime: string;
    }>(server, 'POST', '/v1/acl/token', { ProxyID: 'web' });
    expect(created.status).toBe(200);
    expect(Object.keys(created.body).sort()).toEqual([
      'AccessorID',
      'CreateTime',
      'ProxyID',
      'SecretID',
    ]);
    const listed = await api<unknown[]>(server, 'GET', '/v1/acl/tokens');
    expect(listed.body).toEqual([
      { AccessorID: created.body.AccessorID, ProxyID: 'web', CreateTime: created.body.CreateTime },
    ]);
    expect((await api(server, 'POST', '/v1/acl/token', { Proxy: 'web' })).body).toMatchObject({
      field: 'ProxyID',
    });

    const envoy = connect(server, 'web', created.body.SecretID);
    await waitFor(async () => (await proxies(server)).includes('web'), {
      timeoutMs: 5_000,
      what: 'web in /v1/xds/proxies',
    });
    expect(await envoy.quietFor(200)).toBe(true);
    envoy.close();

    // Tokens persist: the same secret is accepted after a restart.
    await server.stop();
    server = await start(dataDir);
    const admitted = connect(server, 'web', created.body.SecretID);
    await waitFor(async () => (await proxies(server)).includes('web'), {
      timeoutMs: 5_000,
      what: 'web admitted after the restart',
    });
    const other = await api<{ SecretID: string }>(server, 'POST', '/v1/acl/token', {
      ProxyID: 'api',
    });
    const api1 = connect(server, 'api', other.body.SecretID);
    await waitFor(async () => (await proxies(server)).includes('api'), {
      timeoutMs: 5_000,
      what: 'api admitted',
    });

    // Deleting a token ends the open streams it admitted (only those), not just future ones.
    expect((await api(server, 'DELETE', `/v1/acl/token/${created.body.AccessorID}`)).body).toBe(
      true,
    );
    const cut = await withDeadline(admitted.ended, {
      timeoutMs: 5_000,
      what: 'the open stream of the deleted token to end',
    });
    expect(cut.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(await proxies(server)).toEqual(['api']);
    expect(await api1.quietFor(200)).toBe(true);
    expect((await api(server, 'DELETE', `/v1/acl/token/${created.body.AccessorID}`)).status).toBe(
      404,
    );
    const refused = await withDeadline(connect(server, 'web', created.body.SecretID).ended, {
      timeoutMs: 5_000,
      what: 'refusal after delete',
    });
    expect(refused.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('--xds-auth off admits streams without a token and warns at startup', async () => {
    let output = '';
    const logger = createLogger(
      'info',
      new Writable({ write: (chunk, _enc, done) => void ((output += String(chunk)), done()) }),
    );
    const server = await start(tempDir(), { xdsAuth: 'off' }, logger);
    connect(server, 'anything');
    await waitFor(async () => (await proxies(server)).includes('anything'), {
      timeoutMs: 5_000,
      what: 'the unauthenticated stream to be admitted',
    });
    logger.flush();
    const warnings = output.split('\n').filter((l) => l.includes('"level":40'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('xDS authentication is off');
  });
});
