/**
 * WAN federation with a primary datacenter of several servers (docs/architecture.md §6c and
 * "Store"): dc1 is two `isthmus server --store etcd` processes, dc2 one server on LMDB whose
 * `--primary-gateways` lists both dc1 servers' federation ports, dc1's leader first. dc2 joins,
 * replicates what is written on either dc1 server, and forwards its own writes. Then dc1's leader,
 * which dc2's link goes through, is killed with SIGKILL: dc2 dials the other server, whose etcd
 * lease makes it the leader once the killed one's expires, and dc2 replicates and forwards
 * through it again (the time is printed) without losing what it holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaRootsJson } from '../../src/api/ca-routes.js';
import type { ServerJson, WanServerJson } from '../../src/api/operator-routes.js';
import { type EtcdServer, skipWithoutEtcd, startEtcd } from '../helpers/etcd.js';
import { federationSecretFile } from '../helpers/federation-server.js';
import { type MeshProcess, startMeshProcess } from '../helpers/mesh-server.js';
import { cleanupProcesses } from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

describe.skipIf(skipWithoutEtcd())('kill -9 the leader of a federated primary on etcd', () => {
  let etcd: EtcdServer;
  let a1: MeshProcess;
  let a2: MeshProcess;
  let dc2: MeshProcess;
  /** dc1's leader when dc2 joined (dc2's first gateway), and the other dc1 server. */
  let leader: MeshProcess;
  let survivor: MeshProcess;

  beforeAll(async () => {
    etcd = await startEtcd();
    const federated = {
      primaryDatacenter: 'dc1',
      federationAddr: '127.0.0.1:0',
      federationSecretFile: federationSecretFile(),
    };
    const onEtcd = {
      ...federated,
      datacenter: 'dc1',
      store: 'etcd',
      etcdEndpoints: etcd.endpoint,
      etcdPrefix: 'fed-dc1/',
    };
    [a1, a2] = await Promise.all([
      startMeshProcess({ ...onEtcd, nodeName: 'dc1-a' }),
      startMeshProcess({ ...onEtcd, nodeName: 'dc1-b' }),
    ]);
    // dc2 dials the first gateway it is given: dc1's leader, so that killing it cuts dc2's link.
    const leaderName = await waitFor(
      async () => (await get<ServerJson[]>(a1, '/v1/operator/servers')).find((s) => s.Leader)?.Name,
      { timeoutMs: 30_000, what: 'dc1 to elect a leader' },
    );
    [leader, survivor] = leaderName === 'dc1-a' ? [a1, a2] : [a2, a1];
    const gateways = [leader, survivor].map(
      (a) => `127.0.0.1:${Number(a.proc.started.federationPort)}`,
    );
    dc2 = await startMeshProcess({
      ...federated,
      datacenter: 'dc2',
      nodeName: 'dc2-a',
      primaryGateways: gateways.join(','),
    });
  }, 120_000);

  afterAll(async () => {
    await cleanupProcesses();
    await etcd?.stop();
  });

  const get = async <T>(node: MeshProcess, path: string): Promise<T> => {
    const res = await node.api<T>('GET', path);
    if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return res.body;
  };
  const nameOf = async (node: MeshProcess) =>
    (await get<ServerJson[]>(node, '/v1/operator/servers')).find((s) => s.Self)?.Name;
  const wanServers = (node: MeshProcess) => get<WanServerJson[]>(node, '/v1/operator/servers?wan');
  const hasDefaults = async (node: MeshProcess, name: string) =>
    (await node.api('GET', `/v1/config/service-defaults/${name}`)).status === 200;
  const putDefaults = async (node: MeshProcess, name: string) => {
    const res = await node.api('PUT', '/v1/config', {
      Kind: 'service-defaults',
      Name: name,
      Protocol: 'http',
    });
    expect(res.status, `PUT service-defaults ${name}`).toBe(200);
  };

  it('dc2 joins and replicates what either dc1 server writes', async () => {
    const [r1, r2] = [
      await get<CaRootsJson>(a1, '/v1/connect/ca/roots'),
      await get<CaRootsJson>(dc2, '/v1/connect/ca/roots'),
    ];
    expect(r2.TrustDomain).toBe(r1.TrustDomain);
    expect(r2.ActiveRootID).toBe(r1.ActiveRootID);
    // dc2 sees both servers of the primary, one of them its leader.
    await waitFor(
      async () => {
        const dc1 = (await wanServers(dc2)).filter((s) => s.Datacenter === 'dc1');
        return dc1.length === 2 && dc1.filter((s) => s.Leader).length === 1;
      },
      { timeoutMs: 20_000, what: "dc2 to list both dc1 servers, one of them dc1's leader" },
    );
    await putDefaults(a1, 'written-on-a');
    await putDefaults(a2, 'written-on-b');
    for (const name of ['written-on-a', 'written-on-b'])
      await waitFor(() => hasDefaults(dc2, name), { timeoutMs: 20_000, what: `${name} on dc2` });
  }, 60_000);

  it('the other dc1 server takes over: dc2 replicates and forwards through it, keeping what it holds', async () => {
    const leaderName = (await wanServers(dc2)).find(
      (s) => s.Datacenter === 'dc1' && s.Leader,
    )?.Name;
    expect(leaderName, "dc1's leader, as dc2 sees it").toBe(await nameOf(leader));
    // What dc2 replicated stays while dc1 changes hands: polled through the handover.
    const lost: string[] = [];
    let polling = true;
    const poll = (async () => {
      while (polling) {
        for (const name of ['written-on-a', 'written-on-b'])
          if (!(await hasDefaults(dc2, name))) lost.push(`${name} at ${new Date().toISOString()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    const killedAt = Date.now();
    try {
      leader.proc.child.kill('SIGKILL');
      await withDeadline(leader.proc.exited, { timeoutMs: 10_000, what: 'the dc1 leader to die' });
      // The survivor leads once the killed server's lease expires (TTL 5 s), and says so to dc2.
      await waitFor(
        async () => {
          const dc1 = (await wanServers(dc2)).filter((s) => s.Datacenter === 'dc1' && s.Leader);
          return dc1.length === 1 && dc1[0]!.Name !== leaderName;
        },
        { timeoutMs: 45_000, what: 'dc2 to see the surviving dc1 server as leader' },
      );
      await putDefaults(survivor, 'after-the-kill');
      await waitFor(() => hasDefaults(dc2, 'after-the-kill'), {
        timeoutMs: 30_000,
        what: 'a write on the surviving dc1 server to reach dc2',
      });
      console.log(`dc1 leader killed → dc2 follows the new leader: ${Date.now() - killedAt} ms`);
    } finally {
      polling = false;
      await poll;
    }
    expect(lost, 'config entries dc2 held, gone during the handover').toEqual([]);
    // A global write made on dc2 is forwarded to the primary, now through the survivor.
    await putDefaults(dc2, 'forwarded-from-dc2');
    expect(await hasDefaults(survivor, 'forwarded-from-dc2')).toBe(true);
    expect(await hasDefaults(dc2, 'written-on-b')).toBe(true);
  }, 90_000);
});
