/**
 * etcd failing under two `isthmus server --store etcd` processes (issue 15, docs/architecture.md
 * "Store"), with real etcd processes:
 *
 * - One member of a three-member etcd killed (its Raft leader, the worst one): every write is
 *   answered 200, every read works, each server's watch keeps delivering the other's writes, and
 *   the cluster leader election still hands over when the leading server is killed.
 * - All of etcd gone: each server keeps serving the last good config to proxies (a proxy that
 *   reconnects meanwhile gets all of it back), writes answer 503 naming etcd, `/readyz` is 503 and
 *   says etcd is why; when etcd returns everything recovers by itself and a write made then
 *   reaches both servers and their proxies.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/xds/types.js';
import {
  type EtcdCluster,
  type EtcdServer,
  skipWithoutEtcd,
  startEtcd,
  startEtcdCluster,
} from '../helpers/etcd.js';
import { EnvoyLike } from '../helpers/envoy-like.js';
import { adsClient } from '../helpers/fake-envoy.js';
import {
  type ServerProcess,
  cleanupProcesses,
  parseJsonLine,
  startServerProcess,
} from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

const ttlSeconds = 5;

async function api(
  server: ServerProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(server.url(path), {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed };
}

async function metrics(server: ServerProcess): Promise<string> {
  const res = await fetch(server.url('/metrics'));
  expect(res.status).toBe(200);
  return res.text();
}

async function services(server: ServerProcess): Promise<string[]> {
  const res = await api(server, 'GET', '/v1/catalog/services');
  expect(res.status).toBe(200);
  return Object.keys(res.body as object).sort();
}

/** Server → when it logged that it now leads the cluster (filled as the lines come). */
function watchLeadership(servers: readonly ServerProcess[]): Map<ServerProcess, number> {
  const ledAt = new Map<ServerProcess, number>();
  for (const server of servers)
    server.onLine((line) => {
      if (parseJsonLine(line)?.msg === 'this server is now the cluster leader')
        ledAt.set(server, Date.now());
    });
  return ledAt;
}

/** A Delta xDS client for `proxyId` on `server`, with a token made beforehand (no write later). */
async function proxyOn(server: ServerProcess, proxyId: string, token: string): Promise<EnvoyLike> {
  const md = new grpc.Metadata();
  md.set('x-isthmus-token', token);
  return new EnvoyLike(
    adsClient(`127.0.0.1:${server.xdsPort}`, await server.xdsTls()),
    proxyId,
    md,
  );
}

describe.skipIf(skipWithoutEtcd())('etcd failures under two isthmus servers', () => {
  const probes: EnvoyLike[] = [];
  const stops: (() => Promise<void>)[] = [];

  afterEach(async () => {
    for (const p of probes.splice(0)) p.close();
    await cleanupProcesses();
    for (const stop of stops.splice(0)) await stop();
  });

  afterAll(cleanupProcesses);

  function serverArgs(endpoints: string, prefix: string): string[] {
    return ['--store', 'etcd', '--etcd-endpoints', endpoints, '--etcd-prefix', prefix];
  }

  it("one etcd member of three killed (Raft's leader): writes, reads, watches and the leader election keep working", async () => {
    const cluster: EtcdCluster = await startEtcdCluster(3);
    stops.push(() => cluster.stop());
    const args = serverArgs(cluster.endpoints, 'three/');
    const [first, second] = await Promise.all([startServerProcess(args), startServerProcess(args)]);
    const ledAt = watchLeadership([first!, second!]);
    await waitFor(() => ledAt.size === 1, { timeoutMs: 30_000, what: 'one server to lead' });

    const member = await cluster.leader();
    await member.kill();
    // etcd itself is unavailable for writes while its Raft elects a new leader (about its election
    // timeout, 1 s): a write sent then may time out, which no client can tell from a lost commit.
    // Once a member leads again, nothing may fail although a third of the endpoints is dead.
    const raftLeader = await cluster.leader();
    expect(raftLeader).not.toBe(member);

    // Writes on either server (each etcd call may go to any member, the dead one included).
    for (let i = 0; i < 12; i++) {
      const on = i % 2 === 0 ? first! : second!;
      const res = await api(on, 'PUT', '/v1/agent/service/register', {
        Name: `svc-${i}`,
        Port: 8000 + i,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    }
    const all = Array.from({ length: 12 }, (_, i) => `svc-${i}`).sort();
    // Reads, and each server's watch delivering the other's writes.
    for (const server of [first!, second!])
      await waitFor(async () => all.every((s) => services(server).then((l) => l.includes(s))), {
        timeoutMs: 30_000,
        what: 'both servers to see every write',
      });
    for (const server of [first!, second!]) {
      const names = await services(server);
      for (const s of all) expect(names).toContain(s);
    }

    // The leader election: kill -9 whichever leads; the other takes over after the lease TTL.
    expect(ledAt.size).toBe(1);
    const [leading] = [...ledAt.keys()];
    const other = leading === first ? second! : first!;
    // Its metrics say the same: it led all along, and the other never did.
    const leaderMetrics = await metrics(leading!);
    expect(leaderMetrics).toMatch(/^isthmus_cluster_leader 1$/m);
    expect(leaderMetrics).toMatch(/^isthmus_leadership_changes_total\{change="acquired"\} 1$/m);
    expect(leaderMetrics).not.toMatch(/^isthmus_leadership_changes_total\{change="lost"\}/m);
    expect(await metrics(other)).toMatch(/^isthmus_cluster_leader 0$/m);
    const killedAt = Date.now();
    leading!.child.kill('SIGKILL');
    await waitFor(() => ledAt.has(other), {
      timeoutMs: ttlSeconds * 1000 + 30_000,
      what: 'the other server to lead (lease TTL, then one watch event and one Txn)',
    });
    const tookOver = ledAt.get(other)!;
    console.log(
      `etcd member down; the leading isthmus server killed: the other led ${tookOver - killedAt} ms later (lease TTL ${ttlSeconds} s)`,
    );
    expect(await metrics(other)).toMatch(/^isthmus_cluster_leader 1$/m);
    const after = await api(other, 'PUT', '/v1/agent/service/register', { Name: 'after' });
    expect(after.status).toBe(200);
    expect(await services(other)).toContain('after');
  }, 180_000);

  it('all of etcd gone: proxies keep their config, writes are 503 naming etcd, /readyz says why; all recovers by itself', async () => {
    const etcd: EtcdServer = await startEtcd();
    stops.push(() => etcd.stop());
    const args = [...serverArgs(etcd.endpoint, 'outage/'), '--coalesce-ms', '20'];
    const [first, second] = await Promise.all([startServerProcess(args), startServerProcess(args)]);
    const reg = await api(first!, 'PUT', '/v1/agent/service/register', {
      Name: 'api',
      Address: '127.0.0.1',
      Port: 8080,
      Connect: { SidecarService: { Port: 21000 } },
    });
    expect(reg.status).toBe(200);
    const token = await api(second!, 'POST', '/v1/acl/token', { ProxyID: 'api-sidecar-proxy' });
    expect(token.status).toBe(200);
    const secret = (token.body as { SecretID: string }).SecretID;
    const onFirst = await proxyOn(first!, 'api-sidecar-proxy', secret);
    const onSecond = await proxyOn(second!, 'api-sidecar-proxy', secret);
    probes.push(onFirst, onSecond);
    const complete = (p: EnvoyLike) =>
      p.names(TypeUrl.listener).length > 0 &&
      p.names(TypeUrl.cluster).length > 0 &&
      p.names(TypeUrl.secret).length > 0;
    for (const p of [onFirst, onSecond])
      await p.until(complete, 'the proxy to hold listeners, clusters and secrets', 30_000);
    await onSecond.settle();
    const held = (p: EnvoyLike) =>
      Object.fromEntries(
        [TypeUrl.listener, TypeUrl.cluster, TypeUrl.route, TypeUrl.secret].map((t) => [
          t,
          p.names(t),
        ]),
      );
    const before = held(onSecond);

    await etcd.kill();
    for (const server of [first!, second!]) {
      const write = await api(server, 'PUT', '/v1/agent/service/register', { Name: 'during' });
      expect(write.status).toBe(503);
      expect(JSON.stringify(write.body)).toMatch(/etcd/);
      const ready = await waitFor(
        async () => {
          const res = await api(server, 'GET', '/readyz');
          return res.status === 503 && res;
        },
        { timeoutMs: 30_000, what: '/readyz to turn 503' },
      );
      expect(ready.body).toMatchObject({ status: 'not ready' });
      expect(JSON.stringify(ready.body.not_ready)).toMatch(/store unavailable \(etcd/);
    }
    // Proxies keep what they hold: the streams stay up, and one that reconnects gets it all back.
    expect(held(onSecond)).toEqual(before);
    onSecond.close();
    const reconnected = await proxyOn(second!, 'api-sidecar-proxy', secret);
    probes.push(reconnected);
    await reconnected.until(complete, 'a proxy reconnecting during the outage to get its config');
    await reconnected.settle();
    expect(held(reconnected)).toEqual(before);

    await etcd.restart();
    for (const server of [first!, second!])
      await waitFor(async () => (await api(server, 'GET', '/readyz')).status === 200, {
        timeoutMs: 60_000,
        what: '/readyz to be 200 again once etcd is back',
      });
    const after = await api(second!, 'PUT', '/v1/agent/service/register', {
      Name: 'web',
      Address: '127.0.0.1',
      Port: 8081,
      Connect: { SidecarService: { Port: 21001, Proxy: { Upstreams: [] } } },
    });
    expect(after.status, JSON.stringify(after.body)).toBe(200);
    for (const server of [first!, second!])
      await waitFor(async () => (await services(server)).includes('web'), {
        timeoutMs: 30_000,
        what: 'both servers to see the write made after etcd returned',
      });
    expect(await services(first!)).not.toContain('during');
  }, 180_000);
});
