/**
 * `isthmus store copy` (issue 15, README "Running several servers"): a single-server cluster on
 * LMDB, peered with another cluster, moves onto etcd. Real server processes, a real etcd: the
 * server on etcd keeps the peering (ACTIVE again with the same peer), its imports, its catalog and
 * config entries, an unused peering token that still establishes, and the same CA.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeeringJson } from '../../src/api/peering-routes.js';
import { type EtcdServer, skipWithoutEtcd, startEtcd } from '../helpers/etcd.js';
import {
  type ServerProcess,
  cleanupProcesses,
  freePort,
  runCli,
  startServerProcess,
  tempDir,
} from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

async function call<T = any>(
  s: ServerProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(s.url(path), {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const peering = async (s: ServerProcess, name: string) =>
  (await call<PeeringJson>(s, 'GET', `/v1/peering/${name}`)).body;

async function waitActive(s: ServerProcess, name: string, what: string): Promise<PeeringJson> {
  return waitFor(
    async () => {
      const p = await peering(s, name);
      return p?.State === 'ACTIVE' && p;
    },
    { timeoutMs: 30_000, intervalMs: 50, what },
  );
}

const instances = async (s: ServerProcess, service: string, peer?: string) =>
  (
    (
      await call<{ Service: { ID: string } }[]>(
        s,
        'GET',
        `/v1/health/service/${service}${peer ? `?peer=${peer}` : ''}`,
      )
    ).body ?? []
  )
    .map((e) => e.Service.ID)
    .sort();

async function stop(s: ServerProcess): Promise<void> {
  s.child.kill('SIGTERM');
  await withDeadline(s.exited, { timeoutMs: 20_000, what: 'the server to exit' });
}

describe.skipIf(skipWithoutEtcd())('isthmus store copy', () => {
  let etcd: EtcdServer;

  beforeAll(async () => {
    etcd = await startEtcd();
  }, 60_000);

  afterAll(async () => {
    await cleanupProcesses();
    await etcd?.stop();
  });

  it('moves a peered LMDB cluster onto etcd: same peering, imports, tokens and CA', async () => {
    const peeringPort = await freePort();
    const aArgs = ['--datacenter', 'dc-a', '--peering-addr', `127.0.0.1:${peeringPort}`];
    const a = await startServerProcess(aArgs);
    const b = await startServerProcess(['--datacenter', 'dc-b']);

    // A accepts B's dialer; each exports a service to the other.
    const token = await call(a, 'POST', '/v1/peering/token', { PeerName: 'cluster-b' });
    const established = await call(b, 'POST', '/v1/peering/establish', {
      PeerName: 'cluster-a',
      PeeringToken: token.body.PeeringToken,
    });
    expect(established.status).toBe(200);
    for (const [s, name, consumer] of [
      [a, 'api', 'cluster-b'],
      [b, 'web', 'cluster-a'],
    ] as const) {
      await call(s, 'PUT', '/v1/agent/service/register', { ID: `${name}-1`, Name: name, Port: 80 });
      await call(s, 'PUT', '/v1/config', {
        Kind: 'exported-services',
        Name: 'default',
        Services: [{ Name: name, Consumers: [{ Peer: consumer }] }],
      });
    }
    expect(
      (
        await call(a, 'PUT', '/v1/config', {
          Kind: 'service-defaults',
          Name: 'api',
          Protocol: 'http',
        })
      ).status,
    ).toBe(200);
    const before = await waitActive(a, 'cluster-b', 'A ACTIVE with B');
    await waitFor(async () => (await instances(a, 'web', 'cluster-b')).length === 1, {
      timeoutMs: 30_000,
      what: "B's web imported into A",
    });
    await waitFor(async () => (await instances(b, 'api', 'cluster-a')).length === 1, {
      timeoutMs: 30_000,
      what: "A's api imported into B",
    });
    const unused = await call(a, 'POST', '/v1/peering/token', { PeerName: 'cluster-c' });
    expect(unused.status).toBe(200);
    const roots = (await call(a, 'GET', '/v1/connect/ca/roots')).body;

    // While A runs, its store is refused; bad input is one line and exit 2.
    const to = `etcd:${etcd.endpoint}/migrated/`;
    const busy = await runCli(['store', 'copy', '--from', `lmdb:${a.dataDir}`, '--to', to]);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toMatch(
      /^isthmus: store directory .* is in use by process \d+.*stop it first\n$/,
    );
    for (const [args, message] of [
      [['--from', a.dataDir, '--to', to], /--from: .* is not lmdb:DIR/],
      [['--from', `lmdb:${tempDir()}`, '--to', to], /no data\.mdb/],
      [
        ['--from', `lmdb:${a.dataDir}`, '--to', `etcd:${etcd.endpoint}/bad prefix`],
        /--to: .*key prefix/,
      ],
      [['--from', `lmdb:${a.dataDir}`, '--to', 'zk:1.2.3.4:2181'], /--to: .* is not etcd:/],
    ] as const) {
      const bad = await runCli(['store', 'copy', ...args]);
      expect(bad.code, bad.stderr).toBe(2);
      expect(bad.stderr).toMatch(message);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    }

    await stop(a);
    const copied = await runCli(['store', 'copy', '--from', `lmdb:${a.dataDir}`, '--to', to]);
    expect(copied.code, copied.stderr).toBe(0);
    expect(copied.stdout).toMatch(/^copied \d+ keys from lmdb:/);
    const copiedFrom = Number(/\(revision (\d+)\) to etcd/.exec(copied.stdout)?.[1]);
    expect(copied.stdout).toMatch(/^ {2}ca\/keys +1$/m);
    expect(copied.stdout).toMatch(/^ {2}peering\/peerings +2$/m);
    expect(copied.stdout).toMatch(/^ {2}peering\/secrets +2$/m);
    // A second copy would overwrite: refused without --force. (--force is tried on another
    // prefix: this etcd's revision stays below the source's, so the keys keep their indexes.)
    const again = await runCli(['store', 'copy', '--from', `lmdb:${a.dataDir}`, '--to', to]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already holds \d+ keys.*--force/);
    const spare = `etcd:${etcd.endpoint}/spare/`;
    const source = ['store', 'copy', '--from', `lmdb:${a.dataDir}`, '--to', spare];
    expect((await runCli(source)).code).toBe(0);
    const forced = await runCli([...source, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(/replacing \d+ keys/);

    // The same cluster on etcd, with a fresh data dir: nothing comes from A's files any more.
    const onEtcd = await startServerProcess([
      ...aArgs,
      '--store',
      'etcd',
      '--etcd-endpoints',
      etcd.endpoint,
      '--etcd-prefix',
      'migrated/',
    ]);
    // The same roots; their indexes (the keys' revisions) moved above every index A handed out.
    const rootsAfter = (await call(onEtcd, 'GET', '/v1/connect/ca/roots')).body;
    const withoutIndexes = (r: any) => ({
      ...r,
      Roots: r.Roots.map(({ CreateIndex, ModifyIndex, ...rest }: any) => rest),
    });
    expect(withoutIndexes(rootsAfter)).toEqual(withoutIndexes(roots));
    expect(rootsAfter.Roots[0].ModifyIndex).toBeGreaterThan(copiedFrom);
    const after = await waitActive(onEtcd, 'cluster-b', 'A on etcd ACTIVE with B again');
    expect(after.ID).toBe(before.ID);
    expect(after.PeerID).toBe(before.PeerID);
    await waitActive(b, 'cluster-a', 'B ACTIVE with A on etcd');
    expect(await instances(onEtcd, 'web', 'cluster-b')).toEqual(['web-1']);
    expect(await instances(onEtcd, 'api')).toEqual(['api-1']);
    expect((await call(onEtcd, 'GET', '/v1/config/service-defaults/api')).body.Protocol).toBe(
      'http',
    );
    // A change made after the move still reaches B.
    await call(onEtcd, 'PUT', '/v1/agent/service/register', { ID: 'api-2', Name: 'api', Port: 80 });
    await waitFor(async () => (await instances(b, 'api', 'cluster-a')).length === 2, {
      timeoutMs: 30_000,
      what: 'a registration on A-on-etcd imported into B',
    });

    // The token made before the move and never used establishes now.
    const c = await startServerProcess(['--datacenter', 'dc-c']);
    const late = await call(c, 'POST', '/v1/peering/establish', {
      PeerName: 'cluster-a',
      PeeringToken: unused.body.PeeringToken,
    });
    expect(late.status).toBe(200);
    await waitActive(c, 'cluster-a', 'C ACTIVE with A on etcd');
    await waitActive(onEtcd, 'cluster-c', 'A on etcd ACTIVE with C');
  }, 240_000);
});
