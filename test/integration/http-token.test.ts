import { afterAll, describe, expect, it } from 'vitest';
import {
  httpExposureProblem,
  isLoopbackHost,
  loadServerConfig,
  resolveServerConfig,
} from '../../src/config/index.js';
import { tokensEqual } from '../../src/acl/http-token.js';
import { requiresToken } from '../../src/api/auth.js';
import { silentLogger } from '../../src/log.js';
import { startServer } from '../../src/server.js';
import { startApiServer } from '../helpers/api-server.js';
import { cleanupProcesses, tempDir } from '../helpers/process.js';

afterAll(cleanupProcesses);

const token = 'tok-0123456789abcdef';
const svc = { Name: 'web', Port: 80 };

describe('--http-token', () => {
  it('writes need the token (Bearer or X-Isthmus-Token); catalog, health and config reads stay open', async () => {
    const api = await startApiServer({ flags: { httpToken: token } });
    try {
      const denied = [
        await api.call('PUT', '/v1/agent/service/register', svc),
        await api.call('PUT', '/v1/agent/service/register', svc, {
          authorization: 'Bearer wrong-token-0123456789',
        }),
        await api.call('PUT', '/v1/agent/service/register', svc, {
          'x-isthmus-token': `${token}x`,
        }),
        await api.call('PUT', '/v1/agent/service/register', svc, { authorization: token }),
        await api.call('PUT', '/v1/config', { Kind: 'service-defaults', Name: 'web' }),
        await api.call('DELETE', '/v1/config/service-defaults/web'),
      ];
      for (const res of denied) {
        expect(res.status).toBe(403);
        expect(res.json.error).toMatch(
          /^Permission denied: .*Authorization: Bearer <token>.*X-Isthmus-Token/,
        );
      }
      expect(api.server.catalog.allInstances()).toEqual([]);

      expect(
        (
          await api.call('PUT', '/v1/agent/service/register', svc, {
            authorization: `Bearer ${token}`,
          })
        ).status,
      ).toBe(200);
      expect(
        (
          await api.call(
            'PUT',
            '/v1/config',
            { Kind: 'service-defaults', Name: 'web' },
            { 'x-isthmus-token': token },
          )
        ).status,
      ).toBe(200);
      for (const path of [
        '/v1/catalog/services',
        '/v1/catalog/service/web',
        '/v1/health/service/web',
        '/v1/config/service-defaults',
        '/v1/config/service-defaults/web',
        '/healthz',
      ]) {
        expect((await api.call('GET', path)).status, path).toBe(200);
      }
      // Secret reads: refused without the token (whatever the route answers with it).
      for (const path of [
        '/v1/peerings',
        '/v1/peering/east',
        '/v1/acl/tokens',
        '/v1/connect/ca/configuration',
      ]) {
        expect((await api.call('GET', path)).status, path).toBe(403);
      }
      expect((await api.call('GET', '/v1/connect/ca/roots')).status).not.toBe(403);
    } finally {
      await api.stop();
    }
  });

  it('which requests need it', () => {
    expect(requiresToken('PUT', '/v1/agent/service/register')).toBe(true);
    expect(requiresToken('POST', '/v1/anything')).toBe(true);
    expect(requiresToken('DELETE', '/v1/config/:kind/:name')).toBe(true);
    expect(requiresToken('GET', '/v1/catalog/services')).toBe(false);
    expect(requiresToken('HEAD', '/v1/config/:kind')).toBe(false);
    expect(requiresToken('GET', '/v1/peering/:name')).toBe(true);
    expect(requiresToken('GET', '/v1/acl/token/:id')).toBe(true);
    expect(requiresToken('GET', '/v1/connect/ca/roots')).toBe(false);
    expect(requiresToken('GET', '/v1/connect/ca/configuration')).toBe(true);
    expect(requiresToken('GET', '/v1/xds/proxies')).toBe(true);
    expect(requiresToken('GET', '/v1/troubleshoot/peering/:name')).toBe(true);
    expect(requiresToken('GET', '/v1/aclx')).toBe(false);
    expect(tokensEqual(token, token)).toBe(true);
    expect(tokensEqual(token, `${token}x`)).toBe(false);
    expect(tokensEqual('', token)).toBe(false);
  });
});

describe('HTTP exposure', () => {
  const base = { dataDir: tempDir(), xdsAddr: '127.0.0.1:0' };

  it('refuses a non-loopback --http-addr without a token, before binding anything', async () => {
    const result = resolveServerConfig({ flags: { ...base, httpAddr: '0.0.0.0:8500' }, env: {} });
    expect(result.ok).toBe(false);
    const errors = result.ok ? [] : result.error;
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /^--http-addr: 0\.0\.0\.0:8500 is not a loopback address and no --http-token is set; .*--insecure-http/,
    );
    expect(resolveServerConfig({ flags: { ...base, httpAddr: '[::]:8500' }, env: {} }).ok).toBe(
      false,
    );
    expect(
      resolveServerConfig({ flags: { ...base, httpAddr: 'api.example.com:8500' }, env: {} }).ok,
    ).toBe(false);
    // startServer checks again (for configs built in code) and fails before opening or binding.
    const unchecked = {
      ...loadServerConfig({ flags: { ...base, httpAddr: '127.0.0.1:0' }, env: {} }),
      httpAddr: { host: '0.0.0.0', port: 0 },
    };
    await expect(startServer(unchecked, { logger: silentLogger() })).rejects.toThrow(
      /--http-addr: 0\.0\.0\.0:0 is not a loopback address/,
    );
  });

  it('allows it with a token (flag, env or file), or with --insecure-http', () => {
    expect(
      resolveServerConfig({
        flags: { ...base, httpAddr: '0.0.0.0:8500', httpToken: token },
        env: {},
      }).ok,
    ).toBe(true);
    expect(
      resolveServerConfig({
        flags: { ...base, httpAddr: '0.0.0.0:8500' },
        env: { ISTHMUS_HTTP_TOKEN: token },
      }).ok,
    ).toBe(true);
    expect(
      resolveServerConfig({
        flags: { ...base, httpAddr: '0.0.0.0:8500', insecureHttp: true },
        env: {},
      }).ok,
    ).toBe(true);
    expect(
      resolveServerConfig({
        flags: { ...base, httpAddr: '0.0.0.0:8500' },
        env: { ISTHMUS_INSECURE_HTTP: 'true' },
      }).ok,
    ).toBe(true);
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1'])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1'])
      expect(isLoopbackHost(host), host).toBe(false);
    expect(
      httpExposureProblem({ httpAddr: { host: '127.0.0.1', port: 8500 }, insecureHttp: false }),
    ).toBeUndefined();
  });

  it('rejects a short token without echoing it', () => {
    const result = resolveServerConfig({ flags: { ...base, httpToken: 'short' }, env: {} });
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.error.join()).toBe(
      '--http-token: must be 16-256 visible ASCII characters (no spaces)',
    );
  });
});
