/**
 * `isthmus server --store etcd` as users run it (issue 15, docs/architecture.md "Store"): real
 * server processes on a real etcd. What a server answered 200 for survives a kill -9 and comes back
 * on a new process; a second server on the same etcd prefix is refused with one line naming the
 * holder; a setting that cannot work is one line and a non-zero exit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdServer, skipWithoutEtcd, startEtcd } from '../helpers/etcd.js';
import { cleanupProcesses, runCli, startServerProcess, tempDir } from '../helpers/process.js';
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

  it('keeps what it acknowledged across a kill -9; a second server on the prefix is refused while the first holds it', async () => {
    const args = ['--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', 'p1/'];
    const first = await startServerProcess(args);
    const register = await fetch(first.url('/v1/agent/service/register'), {
      method: 'PUT',
      body: JSON.stringify({ Name: 'api', Port: 8080, Connect: { SidecarService: {} } }),
    });
    expect(register.status).toBe(200);

    const second = await runCli([
      'server',
      ...args,
      '--data-dir',
      tempDir(),
      '--http-addr',
      '127.0.0.1:0',
      '--xds-addr',
      '127.0.0.1:0',
      '--peering-addr',
      '127.0.0.1:0',
    ]);
    expect(second.code).not.toBe(0);
    expect(second.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(second.stderr).toMatch(/etcd prefix "p1\/" is held by another isthmus server/);

    first.child.kill('SIGKILL');
    await withDeadline(first.exited, { timeoutMs: 10_000, what: 'the first server to die' });
    // Its hold lapses with its lease (10 s): until then a new server is refused; after it, the
    // new server finds everything the first one acknowledged.
    const next = await waitFor(
      () => startServerProcess(args, { dataDir: first.dataDir }).catch(() => undefined),
      { timeoutMs: 60_000, intervalMs: 500, what: 'a new server once the hold lapsed' },
    );
    const res = await fetch(next.url('/v1/catalog/services'));
    const services = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(services).sort()).toEqual(['api', 'api-sidecar-proxy']);
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
