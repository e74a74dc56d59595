/**
 * Kill -9 the peering leader (issue 15, docs/architecture.md "Store"): cluster A is two `isthmus
 * server --store etcd` processes, cluster B one server on LMDB. B generates the token and A
 * establishes, so A's leader dials the replication stream. Killing that server with SIGKILL leaves
 * its etcd lease to expire; the other A server then leads and dials B again. Both sides are ACTIVE
 * again within the bound (lease TTL 5 s, plus one watch event, one Txn, and the dial; the time is
 * printed), and no imported service disappears on either side meanwhile: each side's imports are
 * polled through the handover.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdServer, skipWithoutEtcd, startEtcd } from '../helpers/etcd.js';
import { type MeshProcess, startMeshProcess } from '../helpers/mesh-server.js';
import { exportEntry, peerClusters } from '../helpers/peered-mesh.js';
import { cleanupProcesses, parseJsonLine } from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

/** The lease TTL (the server's default) that bounds a handover after a leader dies. */
const leaseTtlMs = 5_000;

describe.skipIf(skipWithoutEtcd())('kill -9 the peering leader of a cluster on etcd', () => {
  let etcd: EtcdServer;
  let a1: MeshProcess;
  let a2: MeshProcess;
  let b: MeshProcess;

  beforeAll(async () => {
    etcd = await startEtcd();
    const onEtcd = {
      datacenter: 'dc-a',
      store: 'etcd',
      etcdEndpoints: etcd.endpoint,
      etcdPrefix: 'peered-a/',
    };
    [a1, a2, b] = await Promise.all([
      startMeshProcess(onEtcd),
      startMeshProcess(onEtcd),
      startMeshProcess({ datacenter: 'dc-b' }),
    ]);
    await a1.register({ Name: 'from-a', Address: '127.0.0.1', Port: 9001 });
    await a1.putConfig(exportEntry({ 'from-a': ['cluster-b'] }));
    await b.register({ Name: 'from-b', Address: '127.0.0.1', Port: 9002 });
    await b.putConfig(exportEntry({ 'from-b': ['cluster-a'] }));
    // B accepts, A dials: A's leader holds the stream.
    await peerClusters(b, a1, { dialerName: 'cluster-a', acceptorName: 'cluster-b' }, 30_000);
  }, 120_000);

  afterAll(async () => {
    await cleanupProcesses();
    await etcd?.stop();
  });

  const imported = async (node: MeshProcess, peer: string): Promise<string[]> => {
    const res = await node.api<Record<string, string[]>>(
      'GET',
      `/v1/catalog/services?peer=${peer}`,
    );
    if (res.status !== 200) throw new Error(`imports of ${peer}: HTTP ${res.status}`);
    return Object.keys(res.body).sort();
  };
  /** ACTIVE on a stream that received something after `since` (not the killed leader's stream). */
  const activeSince = async (node: MeshProcess, peer: string, since: number) => {
    const p = (
      await node.api<{ State: string; StreamStatus?: { LastReceive?: string } }>(
        'GET',
        `/v1/peering/${peer}`,
      )
    ).body;
    return p?.State === 'ACTIVE' && Date.parse(p.StreamStatus?.LastReceive ?? '') > since;
  };

  it('the other server takes over the stream; both sides ACTIVE again, no import disappears', async () => {
    for (const [node, peer, service] of [
      [a1, 'cluster-b', 'from-b'],
      [a2, 'cluster-b', 'from-b'],
      [b, 'cluster-a', 'from-a'],
    ] as const)
      await waitFor(async () => (await imported(node, peer)).includes(service), {
        timeoutMs: 30_000,
        what: `${service} to be imported`,
      });
    const leads = (node: MeshProcess) =>
      node.proc.stdoutLines.some(
        (l) => parseJsonLine(l)?.msg === 'this server is now the cluster leader',
      );
    const leader = await waitFor(() => [a1, a2].find(leads), {
      timeoutMs: 30_000,
      what: 'an A server to lead',
    });
    const survivor = leader === a1 ? a2 : a1;

    // Poll both sides' imports all through the handover: any moment one is missing fails the test.
    const missing: string[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const [onB, onA] = await Promise.all([
          imported(b, 'cluster-a'),
          imported(survivor, 'cluster-b'),
        ]);
        if (!onB.includes('from-a')) missing.push(`B lost from-a at ${new Date().toISOString()}`);
        if (!onA.includes('from-b')) missing.push(`A lost from-b at ${new Date().toISOString()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    const killedAt = Date.now();
    leader.proc.child.kill('SIGKILL');
    await withDeadline(leader.proc.exited, { timeoutMs: 10_000, what: 'the leader to die' });
    await waitFor(() => leads(survivor), {
      timeoutMs: leaseTtlMs + 30_000,
      what: 'the other A server to lead',
    });
    const ledMs = Date.now() - killedAt;
    // ACTIVE on both sides, each having received on the stream the survivor dialed.
    await waitFor(
      async () =>
        (await activeSince(survivor, 'cluster-b', killedAt)) &&
        (await activeSince(b, 'cluster-a', killedAt)),
      { timeoutMs: leaseTtlMs + 60_000, intervalMs: 50, what: 'both sides ACTIVE again' },
    );
    const activeMs = Date.now() - killedAt;
    polling = false;
    await poller;
    console.log(
      `peering leader killed -9: the other server led after ${ledMs} ms, both sides ACTIVE after ${activeMs} ms (bound: lease TTL ${leaseTtlMs} ms + one watch event, one Txn and a dial)`,
    );
    expect(missing).toEqual([]);

    // The stream works: a service exported after the handover reaches B through it.
    await survivor.register({ Name: 'after', Address: '127.0.0.1', Port: 9003 });
    await survivor.putConfig(exportEntry({ 'from-a': ['cluster-b'], after: ['cluster-b'] }));
    await waitFor(async () => (await imported(b, 'cluster-a')).includes('after'), {
      timeoutMs: 30_000,
      what: 'a service exported after the handover to reach B',
    });
  }, 180_000);
});
