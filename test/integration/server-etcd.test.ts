/**
 * `isthmus server --store etcd` as users run it (issue 15, docs/architecture.md "Store"): real
 * server processes on a real etcd. Several servers share one prefix and each sees what the others
 * write; what a server answered 200 for survives a kill -9 and comes back on a new process; a
 * setting that cannot work is one line and a non-zero exit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdServer, skipWithoutEtcd, startEtcd } from '../helpers/etcd.js';
import {
  cleanupProcesses,
  parseJsonLine,
  runCli,
  startServerProcess,
  tempDir,
} from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

describe.skipIf(skipWithoutEtcd())('isthmus server on etcd', () => {
  let etcd: EtcdServer;

  beforeAll(async () => {
    etcd = await startEtcd();
  }, 60_000);

  afterAll(async () => {
    await cleanupProcesses();
    await etcd?.stop();
  });

  it('two servers on one prefix: a write on either is seen on the other; what was answered 200 survives a kill -9', async () => {
    const args = ['--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', 'p1/'];
    const [first, second] = await Promise.all([startServerProcess(args), startServerProcess(args)]);
    const register = await fetch(first.url('/v1/agent/service/register'), {
      method: 'PUT',
      body: JSON.stringify({ Name: 'api', Port: 8080, Connect: { SidecarService: {} } }),
    });
    expect(register.status, await register.clone().text()).toBe(200);
    const services = async (server: typeof first) =>
      Object.keys(
        (await (await fetch(server.url('/v1/catalog/services'))).json()) as object,
      ).sort();
    await waitFor(async () => (await services(second)).includes('api-sidecar-proxy'), {
      timeoutMs: 10_000,
      what: 'the second server to see the registration made on the first',
    });
    const entry = await fetch(second.url('/v1/config'), {
      method: 'PUT',
      body: JSON.stringify({ Kind: 'service-defaults', Name: 'api', Protocol: 'http' }),
    });
    expect(entry.status).toBe(200);
    await waitFor(
      async () => (await fetch(first.url('/v1/config/service-defaults/api'))).status === 200,
      { timeoutMs: 10_000, what: 'the first server to see the config entry written on the second' },
    );
    // Both servers sign with the same CA: one root, the same on each.
    const roots = async (server: typeof first) =>
      (
        (await (await fetch(server.url('/v1/connect/ca/roots'))).json()) as {
          Roots: { ID: string }[];
        }
      ).Roots.map((r) => r.ID);
    expect(await roots(first)).toEqual(await roots(second));
    expect(await roots(first)).toHaveLength(1);

    first.child.kill('SIGKILL');
    await withDeadline(first.exited, { timeoutMs: 10_000, what: 'the first server to die' });
    expect(await services(second)).toEqual(['api', 'api-sidecar-proxy']);
    const next = await startServerProcess(args);
    expect(await services(next)).toEqual(['api', 'api-sidecar-proxy']);
    expect(await roots(next)).toEqual(await roots(second));
  }, 120_000);

  it('a TTL check expires on the leader only, and still expires after the leader is killed -9', async () => {
    const args = ['--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', 'ttl/'];
    const servers = await Promise.all([startServerProcess(args), startServerProcess(args)]);
    const linesOf = (server: (typeof servers)[number], msg: string) =>
      server.stdoutLines.filter((l) => parseJsonLine(l)?.msg === msg);
    const leader = await waitFor(
      () => servers.find((s) => linesOf(s, 'this server is now the cluster leader').length > 0),
      { timeoutMs: 30_000, what: 'one server to lead' },
    );
    const follower = servers.find((s) => s !== leader)!;
    const status = async (server: typeof leader, name: string) =>
      (
        (await (await fetch(server.url(`/v1/health/service/${name}`))).json()) as {
          Checks: { Status: string }[];
        }[]
      )[0]?.Checks[0]?.Status;
    const register = async (server: typeof leader, name: string, ttl: string) => {
      const res = await fetch(server.url('/v1/agent/service/register'), {
        method: 'PUT',
        body: JSON.stringify({ Name: name, Port: 80, Check: { TTL: ttl, Status: 'passing' } }),
      });
      expect(res.status, await res.clone().text()).toBe(200);
    };

    // Registered on the follower: both servers arm its timer, the leader alone marks it critical.
    await register(follower, 'short', '1s');
    for (const server of servers)
      await waitFor(async () => (await status(server, 'short')) === 'critical', {
        timeoutMs: 30_000,
        what: 'the TTL check to expire',
      });
    // The server logs the expiry once its write has committed, which the other server's API can
    // show first: the line may still be on its way.
    await waitFor(() => linesOf(leader, 'TTL check expired').length > 0, {
      timeoutMs: 10_000,
      what: "the leader's log line for the expired check",
    });
    expect(linesOf(leader, 'TTL check expired')).toHaveLength(1);
    expect(linesOf(follower, 'TTL check expired')).toHaveLength(0);

    // The leader dies before the next one is due: the follower takes over and expires it.
    await register(follower, 'orphan', '3s');
    leader.child.kill('SIGKILL');
    await waitFor(async () => (await status(follower, 'orphan')) === 'critical', {
      timeoutMs: 60_000,
      what: 'the new leader to expire the check the old one armed (lease TTL, then 1 s at most)',
    });
    await waitFor(() => linesOf(follower, 'TTL check expired').length > 0, {
      timeoutMs: 10_000,
      what: "the new leader's log line for the expired check",
    });
    expect(linesOf(follower, 'TTL check expired')).toHaveLength(1);
  }, 120_000);

  it('--store etcd without endpoints, or an etcd that is not there: one line and a non-zero exit', async () => {
    const base = [
      'server',
      '--data-dir',
      tempDir(),
      '--http-addr',
      '127.0.0.1:0',
      '--xds-addr',
      '127.0.0.1:0',
      '--peering-addr',
      '127.0.0.1:0',
      '--store',
      'etcd',
    ];
    const none = await runCli(base);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/^isthmus: --store etcd needs --etcd-endpoints HOST:PORT/);
    expect(none.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    const away = await runCli([...base, '--etcd-endpoints', '127.0.0.1:1']);
    expect(away.code).not.toBe(0);
    expect(away.stderr).toMatch(
      /cannot reach etcd at http:\/\/127\.0\.0\.1:1: .*check --etcd-endpoints/,
    );
    expect(away.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  });
});
