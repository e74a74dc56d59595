import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createHttpApi } from '../../src/api/http.js';
import { loadServerConfig } from '../../src/config/index.js';
import { IsthmusError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { onShutdownSignal } from '../../src/cli/shutdown.js';
import { startServer } from '../../src/server.js';
import {
  cleanupProcesses,
  parseJsonLine,
  runCli,
  startServerProcess,
  tempDir,
} from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';
import { Metadata, status as grpcStatus } from '@grpc/grpc-js';
import { adsClient, connectDelta } from '../helpers/fake-envoy.js';
import { TypeUrl } from '../../src/xds/types.js';

afterEach(cleanupProcesses);
afterAll(cleanupProcesses);

async function getJson(
  url: string,
): Promise<{ status: number; body: unknown; type: string | null }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.json() };
}

describe('isthmus server (real process)', () => {
  it('serves probes, metrics and proxy status, then exits 0 soon after SIGTERM', async () => {
    const server = await startServerProcess();
    expect(server.started).toMatchObject({ datacenter: 'dc1', dataDir: server.dataDir });
    expect(server.xdsPort).toBeGreaterThan(0);

    expect(await getJson(server.url('/healthz'))).toMatchObject({
      status: 200,
      body: { status: 'ok' },
    });
    expect(await getJson(server.url('/readyz'))).toMatchObject({
      status: 200,
      body: { status: 'ok' },
    });
    const proxies = await getJson(server.url('/v1/xds/proxies'));
    expect(proxies.status).toBe(200);
    expect(Array.isArray(proxies.body)).toBe(true);
    expect(await getJson(server.url('/no/such/route'))).toMatchObject({
      status: 404,
      body: { error: expect.any(String) },
    });

    const metrics = await fetch(server.url('/metrics'));
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    expect(text).toMatch(
      /^isthmus_build_info\{version="\d+\.\d+\.\d+",node_version="v[\d.]+"\} 1$/m,
    );
    expect(text).toContain('process_cpu');

    const sentAt = Date.now();
    server.child.kill('SIGTERM');
    const exit = await withDeadline(server.exited, {
      timeoutMs: 10_000,
      what: 'the server to exit after SIGTERM',
    });
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - sentAt).toBeLessThan(5_000);
    const messages = server.stdoutLines.map((l) => parseJsonLine(l)?.msg);
    expect(messages).toEqual(
      expect.arrayContaining(['shutdown requested', 'server stopping', 'server stopped']),
    );
    expect(server.stderr()).toBe('');
    await expect(fetch(server.url('/healthz'))).rejects.toThrow();
  });

  it('on SIGTERM ends open xDS streams with UNAVAILABLE (proxies reconnect elsewhere) and exits 0', async () => {
    const server = await startServerProcess();
    const client = adsClient(`127.0.0.1:${server.xdsPort}`, await server.xdsTls());
    try {
      // xDS streams need a proxy token (--xds-auth token is the default).
      const created = await fetch(server.url('/v1/acl/token'), {
        method: 'POST',
        body: JSON.stringify({ ProxyID: 'sidecar-1' }),
      });
      const metadata = new Metadata();
      metadata.set('x-isthmus-token', ((await created.json()) as { SecretID: string }).SecretID);
      const envoy = connectDelta(client, 'sidecar-1', metadata);
      envoy.send(TypeUrl.cluster, { subscribe: ['*'] });
      await waitFor(
        async () => ((await getJson(server.url('/v1/xds/proxies'))).body as unknown[]).length === 1,
        {
          timeoutMs: 5_000,
          what: 'the proxy to show in /v1/xds/proxies',
        },
      );
      server.child.kill('SIGTERM');
      const ended = await withDeadline(envoy.ended, {
        timeoutMs: 10_000,
        what: 'the xDS stream to end',
      });
      expect(ended.code).toBe(grpcStatus.UNAVAILABLE);
      expect(
        await withDeadline(server.exited, { timeoutMs: 10_000, what: 'exit after SIGTERM' }),
      ).toEqual({ code: 0, signal: null });
    } finally {
      client.close();
    }
  });

  it('exits 0 on SIGINT too', async () => {
    const server = await startServerProcess();
    server.child.kill('SIGINT');
    expect(
      await withDeadline(server.exited, { timeoutMs: 10_000, what: 'exit after SIGINT' }),
    ).toEqual({ code: 0, signal: null });
  });

  it('honours ISTHMUS_DATACENTER, and flags over the environment', async () => {
    const fromEnv = await startServerProcess([], { env: { ISTHMUS_DATACENTER: 'dc-from-env' } });
    expect(fromEnv.started.datacenter).toBe('dc-from-env');
    const fromFlag = await startServerProcess(['--datacenter', 'dc-from-flag'], {
      env: { ISTHMUS_DATACENTER: 'dc-from-env' },
    });
    expect(fromFlag.started.datacenter).toBe('dc-from-flag');
  });

  it('reads a YAML config file', async () => {
    const configFile = join(tempDir(), 'isthmus.yaml');
    writeFileSync(configFile, 'datacenter: dc-from-file\nlog_level: info\n');
    const server = await startServerProcess(['--config', configFile]);
    expect(server.started.datacenter).toBe('dc-from-file');
  });
});

describe('isthmus CLI errors', () => {
  it('a bad flag value exits 2 with one line naming the flag', async () => {
    const res = await runCli(['server', '--http-addr', 'nope', '--data-dir', tempDir()]);
    expect(res.code).toBe(2);
    expect(res.stderr).toBe('isthmus: --http-addr: "nope" is not HOST:PORT (port 0-65535)\n');
    expect(res.stdout).toBe('');
  });

  it('an unknown config-file key exits 2 naming the key', async () => {
    const configFile = join(tempDir(), 'bad.yaml');
    writeFileSync(configFile, 'datacenter: dc2\nhttp_address: 127.0.0.1:1\n');
    const res = await runCli(['server', '--config', configFile, '--data-dir', tempDir()]);
    expect(res.code).toBe(2);
    expect(res.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(res.stderr).toMatch(/^isthmus: .*unknown key "http_address"/);
  });

  it('an unknown option or command exits 2 with one line', async () => {
    for (const args of [['server', '--nope'], ['nope']]) {
      const res = await runCli(args);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stderr, args.join(' ')).toMatch(
        /^isthmus: unknown (option|command) '(--)?nope'\n$/,
      );
    }
  });

  it('an address in use is a runtime failure: exit 1, one line', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const port = (blocker.address() as { port: number }).port;
      const res = await runCli([
        'server',
        '--http-addr',
        `127.0.0.1:${port}`,
        '--xds-addr',
        '127.0.0.1:0',
        '--peering-addr',
        '127.0.0.1:0',
        '--data-dir',
        tempDir(),
      ]);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/^isthmus: .*EADDRINUSE.*\n$/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('--help and --version exit 0 on stdout', async () => {
    const help = await runCli(['server', '--help']);
    expect(help.code).toBe(0);
    for (const flag of [
      '--data-dir',
      '--datacenter',
      '--http-addr',
      '--xds-addr',
      '--peering-addr',
      '--log-level',
      '--xds-max-streams',
      '--config',
    ]) {
      expect(help.stdout).toContain(flag);
    }
    const version = await runCli(['--version']);
    expect(version).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+$/) });
  });
});

describe('HTTP API (in process)', () => {
  const metrics = new Metrics();
  const xds = { proxyStatus: () => [{ node: 'web-sidecar' }] };

  it('answers 503 on /readyz with what is not ready', async () => {
    const app = createHttpApi({
      logger: silentLogger(),
      metrics,
      xds,
      health: { ready: () => false, notReady: () => ['shutting down'] },
    });
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ status: 'not ready', not_ready: ['shutting down'] });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/xds/proxies' })).json()).toEqual([
      { node: 'web-sidecar' },
    ]);
    await app.close();
  });

  it('maps IsthmusError to its HTTP status and other errors to an opaque 500', async () => {
    const app = createHttpApi({
      logger: silentLogger(),
      metrics,
      xds,
      health: { ready: () => true },
    });
    app.get('/conflict', async () => {
      throw new IsthmusError('already_exists', 'service web exists', 'Service.Name');
    });
    app.get('/bug', async () => {
      throw new Error('secret internals');
    });
    const conflict = await app.inject({ method: 'GET', url: '/conflict' });
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json()).toEqual({ error: 'service web exists', field: 'Service.Name' });
    const bug = await app.inject({ method: 'GET', url: '/bug' });
    expect(bug.statusCode).toBe(500);
    expect(bug.json()).toEqual({ error: 'internal error' });
    const missing = await app.inject({ method: 'DELETE', url: '/v1/nothing' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: 'no route for DELETE /v1/nothing' });
    await app.close();
  });

  it('startServer binds port 0, is ready, and stop() closes everything', async () => {
    const config = loadServerConfig({
      flags: {
        dataDir: tempDir(),
        httpAddr: '127.0.0.1:0',
        xdsAddr: '127.0.0.1:0',
        peeringAddr: '127.0.0.1:0',
      },
      env: {},
    });
    const server = await startServer(config, { logger: silentLogger() });
    const url = `http://127.0.0.1:${server.httpPort}/readyz`;
    expect((await fetch(url)).status).toBe(200);
    await withDeadline(server.stop(), { timeoutMs: 10_000, what: 'stop()' });
    await expect(fetch(url)).rejects.toThrow();
    // The store is closed: the same data dir can be opened again in this process.
    const again = await startServer(config, { logger: silentLogger() });
    await again.stop();
  });
});

describe('shutdown on signals (in process)', () => {
  it('stops once and resolves 0; a stop that hangs past the deadline exits 1', async () => {
    let stops = 0;
    const clean = onShutdownSignal({
      logger: silentLogger(),
      signals: ['SIGUSR2'],
      stop: async () => void stops++,
      exit: () => undefined,
    });
    process.kill(process.pid, 'SIGUSR2');
    expect(await withDeadline(clean, { timeoutMs: 5_000, what: 'clean shutdown' })).toBe(0);
    expect(stops).toBe(1);
    process.removeAllListeners('SIGUSR2');

    const exits: number[] = [];
    void onShutdownSignal({
      logger: silentLogger(),
      signals: ['SIGUSR2'],
      hardExitMs: 50,
      stop: () => new Promise(() => undefined),
      exit: (code) => void exits.push(code),
    });
    process.kill(process.pid, 'SIGUSR2');
    await waitFor(() => exits.length > 0, { timeoutMs: 5_000, what: 'the hard exit' });
    expect(exits).toEqual([1]);
    process.removeAllListeners('SIGUSR2');
  });
});
