/**
 * `isthmus demo` with real Envoy, as a user runs it: the real command in its own process, with the
 * Envoy the suite uses. The printed answer is api's own, reached by a request from B's web app
 * through web's sidecar, B's gateway, A's gateway and api's sidecar, with web's SPIFFE ID as the
 * caller; no key or token material is printed; every Envoy the demo started is gone when it exits
 * (done, Ctrl-C or failure), and an Envoy that cannot start is named with its last log lines.
 */
import { readFileSync, readdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupProcesses, runCli, spawnCli, tempDir } from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';
import { envoyBinary, skipWithoutEnvoy, testedEnvoyVersion } from './harness.js';

afterAll(cleanupProcesses);

const demoDirs = (tmp: string) => readdirSync(tmp).filter((n) => n.startsWith('isthmus-demo-'));

/**
 * PIDs of the Envoy processes whose command line points into `tmp` (the demo's temp dir is there).
 */
function envoysUnder(tmp: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    if (argv.includes('--use-dynamic-base-id') && argv.some((a) => a.startsWith(tmp)))
      pids.push(Number(entry));
  }
  return pids;
}

/** Nothing secret on stdout: no PEM block (not even URL-encoded), no private key, no token. */
function expectNoSecrets(stdout: string): void {
  expect(stdout).not.toMatch(
    /PRIVATE KEY|-----BEGIN|BEGIN%20|PeeringToken|SecretID|x-isthmus-token/,
  );
  expect(stdout).not.toMatch(/[A-Za-z0-9+/_-]{120,}/);
}

const port = (stdout: string, re: RegExp): string => {
  const m = re.exec(stdout);
  expect(m, `${re} in\n${stdout}`).not.toBeNull();
  return m![1]!;
};

describe.skipIf(skipWithoutEnvoy())('isthmus demo with real Envoy', () => {
  it("sends a real request from B's web through both gateways to A's api, prints api's answer and who each hop saw, exits 0 and leaves no Envoy or temp dir", async () => {
    const tmp = tempDir('isthmus-demo-envoy-');
    const res = await runCli(['demo', '--envoy', envoyBinary()!], {
      env: { TMPDIR: tmp },
      timeoutMs: 150_000,
    });
    const out = res.stdout;
    expect(res.code, `stderr: ${res.stderr}\nstdout: ${out}`).toBe(0);
    for (const n of [1, 2, 3, 4, 5, 6, 7]) expect(out).toMatch(new RegExp(`^${n} ✓ `, 'm'));
    expect(out).not.toContain('✗');
    expect(out).not.toContain('No Envoy');
    expect(out).toMatch(
      new RegExp(
        `^5 ✓ 5 Envoy ${testedEnvoyVersion.replace(/\./g, '\\.')} processes \\(.+\\) LIVE, every update from isthmus accepted`,
        'm',
      ),
    );
    for (const proxy of [
      'api-sidecar-proxy',
      'gw-a',
      'gw-b',
      'web-sidecar-proxy',
      'api-b-sidecar-proxy',
    ])
      expect(out).toMatch(
        new RegExp(`^ {6}${proxy} +cluster [AB] +admin http://127\\.0\\.0\\.1:\\d+$`, 'm'),
      );

    const gwA = port(out, /mesh gateway gw-a \(LAN\+WAN 127\.0\.0\.1:(\d+)\)/);
    const gwB = port(out, /mesh gateway gw-b \(127\.0\.0\.1:(\d+)\)/);
    const apiSidecar = port(out, /with a sidecar \(public listener 127\.0\.0\.1:(\d+)\)/);
    const apiApp = port(out, /api \(HTTP app 127\.0\.0\.1:(\d+)\)/);
    const upstream = port(
      out,
      /upstream api from peer cluster-a on 127\.0\.0\.1:(\d+), via B's mesh gateway/,
    );
    // What B's web sidecar Envoy holds: the peered cluster, its endpoint B's gateway.
    expect(out).toContain(
      `endpoints  127.0.0.1:${gwB} healthy  (B's mesh gateway gw-b: mesh gateway mode local)`,
    );

    // api's own answer, reached through the upstream listener.
    expect(out).toMatch(
      new RegExp(
        `^7 ✓ GET http://127\\.0\\.0\\.1:\\d+/hello \\(B's web app\\), which called api at http://127\\.0\\.0\\.1:${upstream}/hello \\(its sidecar's upstream listener\\): HTTP 200 from api in dc-a`,
        'm',
      ),
    );
    expect(out).toContain(
      'api answered {"app":"api","datacenter":"dc-a","method":"GET","path":"/hello"}',
    );
    // The way, from each Envoy's counters: both gateways carried it.
    const way = (envoy: string, to: string, name: string) =>
      new RegExp(
        `^ {8}${envoy} +cluster \\S+ → 127\\.0\\.0\\.1:${to} \\(${name}\\), [1-9]\\d* bytes out, [1-9]\\d* in$`,
        'm',
      );
    expect(out).toMatch(way('web-sidecar-proxy', gwB, 'gw-b'));
    expect(out).toMatch(way('gw-b', gwA, 'gw-a'));
    expect(out).toMatch(way('gw-a', apiSidecar, "api's sidecar"));
    expect(out).toMatch(way('api-sidecar-proxy', apiApp, "api's app"));
    // Identities: A's gateway accepted B's web; api's sidecar accepted A's gateway; api's app sees
    // web.
    const hop1 =
      /^ {8}1\. server spiffe:\/\/([^/]+)\/gateway\/mesh\/dc\/dc-a accepted client spiffe:\/\/([^/]+)\/ns\/default\/dc\/dc-b\/svc\/web$/m.exec(
        out,
      );
    expect(hop1, out).not.toBeNull();
    const [, tdA, tdB] = hop1!;
    expect(tdA).not.toBe(tdB);
    expect(out).toContain(
      `        2. server spiffe://${tdA}/ns/default/dc/dc-a/svc/api accepted client spiffe://${tdA}/gateway/mesh/dc/dc-a`,
    );
    expect(out).toMatch(
      new RegExp(
        `web's sidecar checked that spiffe://${tdA}/gateway/mesh/dc/dc-a is one of its SAN matchers \\(cluster \\S+: [1-9]\\d* TLS handshakes?, 0 failed verifications\\)`,
      ),
    );
    expect(out).toContain(
      `      api's app sees the caller: spiffe://${tdB}/ns/default/dc/dc-b/svc/web`,
    );

    expectNoSecrets(out);
    expect(envoysUnder(tmp)).toEqual([]);
    expect(demoDirs(tmp)).toEqual([]);
  }, 160_000);

  it('--keep-running: the printed curl reaches api through the mesh; Ctrl-C stops every Envoy and app (exit 0) and removes the temp dir', async () => {
    const tmp = tempDir('isthmus-demo-envoy-');
    const proc = spawnCli(['demo', '--keep-running', '--envoy', envoyBinary()!], {
      env: { TMPDIR: tmp },
    });
    await withDeadline(
      new Promise<void>((resolve) =>
        proc.onLine((line) => line.includes('press Ctrl-C') && resolve()),
      ),
      {
        timeoutMs: 120_000,
        what: `the "press Ctrl-C" line (stdout: ${proc.stdoutLines.join('\n')}; stderr: ${proc.stderr()})`,
      },
    );
    const stdout = proc.stdoutLines.join('\n');
    expectNoSecrets(stdout);
    expect(stdout).toMatch(/^ {2}Envoy logs: {2}\S+\/envoy\/<proxy>\.log$/m);
    expect(envoysUnder(tmp)).toHaveLength(5);
    // The command printed for a look at the upstream listener: api answers, and sees web as the
    // caller.
    const upstreamUrl = /curl (http:\/\/127\.0\.0\.1:\d+\/hello) +# what web's app does/.exec(
      stdout,
    )?.[1];
    expect(upstreamUrl).toBeDefined();
    const res = await fetch(upstreamUrl!);
    expect(res.status).toBe(200);
    const seen = (await res.json()) as { app: string; headers: Record<string, string> };
    expect(seen.app).toBe('api');
    expect(seen.headers['x-forwarded-client-cert']).toMatch(
      /^By=spiffe:\/\/[^;]+\/gateway\/mesh\/dc\/dc-a;Hash=[0-9a-f]+;URI=spiffe:\/\/[^/]+\/ns\/default\/dc\/dc-b\/svc\/web,/,
    );
    // web's upstream api without a peer reaches B's own api (README "Fail over to a peer").
    const localUrl =
      /curl (http:\/\/127\.0\.0\.1:\d+\/hello) +# web's upstream api in B itself/.exec(stdout)?.[1];
    expect(localUrl).toBeDefined();
    const local = (await (await fetch(localUrl!)).json()) as { app: string; datacenter: string };
    expect(local).toMatchObject({ app: 'api', datacenter: 'dc-b' });
    const admins = [...stdout.matchAll(/curl (http:\/\/127\.0\.0\.1:\d+)\/clusters/g)].map(
      (m) => m[1]!,
    );
    expect(admins).toHaveLength(5);
    for (const admin of admins)
      expect((await (await fetch(`${admin}/ready`)).text()).trim()).toBe('LIVE');

    proc.child.kill('SIGINT');
    const exit = await withDeadline(proc.exited, {
      timeoutMs: 20_000,
      what: 'the demo to exit after SIGINT',
    });
    expect(exit.code).toBe(0);
    expect(envoysUnder(tmp)).toEqual([]);
    await waitFor(
      () =>
        fetch(upstreamUrl!).then(
          () => false,
          () => true,
        ),
      { timeoutMs: 2_000, what: `${upstreamUrl} to stop answering` },
    );
    expect(demoDirs(tmp)).toEqual([]);
  }, 150_000);

  it('Ctrl-C while the Envoys start: exit 130, no Envoy left running, temp dir removed', async () => {
    const tmp = tempDir('isthmus-demo-envoy-');
    const proc = spawnCli(['demo', '--envoy', envoyBinary()!], { env: { TMPDIR: tmp } });
    await withDeadline(
      new Promise<void>((resolve) => proc.onLine((line) => line.startsWith('4 ✓') && resolve())),
      { timeoutMs: 60_000, what: `step 4 (stdout: ${proc.stdoutLines.join('\n')})` },
    );
    await waitFor(() => envoysUnder(tmp).length > 0, {
      timeoutMs: 30_000,
      what: 'an Envoy of the demo to be running',
    });
    proc.child.kill('SIGINT');
    const exit = await withDeadline(proc.exited, {
      timeoutMs: 20_000,
      what: 'the demo to exit after SIGINT',
    });
    expect(exit.code).toBe(130);
    expect(proc.stdoutLines.join('\n')).not.toMatch(/^7 ✓/m);
    expect(envoysUnder(tmp)).toEqual([]);
    expect(demoDirs(tmp)).toEqual([]);
  }, 90_000);

  it('an Envoy that cannot start: ✗ naming it with its last log lines, exit 1, no Envoy left running', async () => {
    const tmp = tempDir('isthmus-demo-envoy-');
    // Answers --version as the real Envoy does (so it is accepted), then fails like a broken
    // install.
    const broken = join(tmp, 'broken-envoy');
    writeFileSync(
      broken,
      `#!/bin/sh\nif [ "$1" = --version ]; then exec '${envoyBinary()!}' --version; fi\necho "[critical] cannot load the bootstrap: simulated failure" >&2\nexit 1\n`,
    );
    chmodSync(broken, 0o755);
    const res = await runCli(['demo', '--envoy', broken], {
      env: { TMPDIR: tmp },
      timeoutMs: 60_000,
    });
    expect(res.code, res.stdout).toBe(1);
    expect(res.stdout).toMatch(/^4 ✓ /m);
    expect(res.stdout).toMatch(
      new RegExp(
        `^✗ start Envoy ${testedEnvoyVersion.replace(/\./g, '\\.')} for every proxy: envoy (api-sidecar-proxy|gw-a|gw-b|web-sidecar-proxy|api-b-sidecar-proxy): exited \\(code 1\\) before its admin listener was up$`,
        'm',
      ),
    );
    const named = /^✗ .*: envoy (\S+): exited/m.exec(res.stdout)![1];
    expect(res.stdout).toContain(
      `    last lines of envoy ${named}'s log:\n      [critical] cannot load the bootstrap: simulated failure`,
    );
    expect(res.stdout).not.toMatch(/^5 ✓/m);
    expect(envoysUnder(tmp)).toEqual([]);
    expect(demoDirs(tmp)).toEqual([]);
  }, 70_000);
});
