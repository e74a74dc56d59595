/**
 * Several servers on one etcd prefix as one cluster (issue 15, docs/architecture.md §1
 * "Membership"): each lists the live servers and which leads; `/v1/xds/proxies`, `proxy-status`
 * and troubleshoot on any server show every proxy of the cluster with the server it is connected
 * to; a server killed -9 leaves the list within its lease TTL while the others keep answering.
 * Real server processes, a real etcd, fake Delta proxies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adsClient, connectDelta } from '../helpers/fake-envoy.js';
import { type EtcdServer, skipWithoutEtcd, startEtcd } from '../helpers/etcd.js';
import {
  type ServerProcess,
  cleanupProcesses,
  runCli,
  startServerProcess,
} from '../helpers/process.js';
import { waitFor, withDeadline } from '../helpers/wait.js';
import * as grpc from '@grpc/grpc-js';
import {
  ClientStatusDiscoveryServiceClient,
  ClientStatusRequest,
  type ClientStatusResponse,
} from '../../src/gen/envoy/service/status/v3/csds.js';
import { xdsChannelCredentials } from '../../src/xds/tls.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { ServerJson } from '../../src/api/operator-routes.js';
import type { ProxyJson } from '../../src/api/xds-routes.js';

const token = 'cluster-status-test-token-0123456789';
const auth = { authorization: `Bearer ${token}` };

async function get<T>(server: ServerProcess, path: string) {
  const res = await fetch(server.url(path), { headers: auth });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text) as T };
}

const servers = async (s: ServerProcess) =>
  (await get<ServerJson[]>(s, '/v1/operator/servers')).body;

/** The node ids CSDS on `server` answers with (a fetch with the HTTP token as metadata). */
async function csdsNodes(server: ServerProcess): Promise<string[]> {
  const { credentials, options } = xdsChannelCredentials(await server.xdsTls());
  const client = new ClientStatusDiscoveryServiceClient(
    `127.0.0.1:${server.xdsPort}`,
    credentials,
    options,
  );
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  try {
    const res = await withDeadline(
      new Promise<ClientStatusResponse>((resolve, reject) =>
        client.fetchClientStatus(ClientStatusRequest.fromPartial({}), md, (err, r) =>
          err ? reject(err) : resolve(r!),
        ),
      ),
      { timeoutMs: 15_000, what: 'a CSDS answer' },
    );
    return res.config.map((c) => c.node?.id ?? '');
  } finally {
    client.close();
  }
}

/** A fake sidecar connected to `server`, holding its clusters (ACKed). */
async function connectProxy(server: ServerProcess, id: string) {
  const client = adsClient(`127.0.0.1:${server.xdsPort}`, await server.xdsTls());
  const envoy = connectDelta(client, id);
  envoy.send(TypeUrl.cluster, { subscribe: ['*'] });
  const first = await withDeadline(envoy.next(20_000), {
    timeoutMs: 30_000,
    what: `the first CDS answer for ${id}`,
  });
  envoy.ack(first);
  return {
    close: () => {
      envoy.close();
      client.close();
    },
  };
}

/**
 * A page's change stream on `server` (`GET /v1/ui/events`); `proxiesChange` waits for the next
 * frame that names the `proxies` topic after the last one taken.
 */
async function openChanges(server: ServerProcess) {
  const abort = new AbortController();
  const res = await fetch(server.url('/v1/ui/events'), { headers: auth, signal: abort.signal });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  return {
    async proxiesChange(what: string): Promise<void> {
      await withDeadline(
        (async () => {
          for (;;) {
            const end = buffered.indexOf('\n\n');
            if (end >= 0) {
              const frame = buffered.slice(0, end);
              buffered = buffered.slice(end + 2);
              if (/^event: change$/m.test(frame) && frame.includes('"proxies"')) return;
              continue;
            }
            const { value, done } = await reader.read();
            if (done) throw new Error('the change stream ended');
            buffered += decoder.decode(value, { stream: true });
          }
        })(),
        { timeoutMs: 20_000, what: `a proxies change on the page's stream: ${what}` },
      );
    },
    close: () => abort.abort(),
  };
}

describe.skipIf(skipWithoutEtcd())('a cluster of servers on etcd', () => {
  let etcd: EtcdServer;

  beforeAll(async () => {
    etcd = await startEtcd();
  }, 60_000);

  afterAll(async () => {
    await cleanupProcesses();
    await etcd?.stop();
  });

  it('any server lists every server and every proxy with the server it is connected to; a killed server leaves within the lease TTL', async () => {
    const args = (name: string) => [
      ...['--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', 'members1/'],
      ...['--node-name', name, '--http-token', token, '--xds-auth', 'off'],
    ];
    const [s1, s2] = await Promise.all([
      startServerProcess(args('s1')),
      startServerProcess(args('s2')),
    ]);
    // Membership: both servers on both, one leader, Self marks who answered.
    for (const [server, self] of [
      [s1, 's1'],
      [s2, 's2'],
    ] as const) {
      const list = await waitFor(
        async () => {
          const l = await servers(server);
          return l.length === 2 && l.some((s) => s.Leader) ? l : undefined;
        },
        { timeoutMs: 15_000, what: `${self} to list both servers and a leader` },
      );
      expect(list.map((s) => s.Name)).toEqual(['s1', 's2']);
      expect(list.filter((s) => s.Leader)).toHaveLength(1);
      expect(list.find((s) => s.Self)?.Name).toBe(self);
      const mine = list.find((s) => s.Name === self)!;
      expect(mine.HTTPAddr).toBe(`127.0.0.1:${server.httpPort}`);
      expect(mine.XdsAddr).toBe(`127.0.0.1:${server.xdsPort}`);
      expect(mine.PeeringAddr).toBe(`127.0.0.1:${server.peeringPort}`);
    }
    const table = await runCli([
      'members',
      '--http-addr',
      `127.0.0.1:${s2.httpPort}`,
      '--token',
      token,
    ]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^NAME +HTTP +XDS +PEERING +LEADER/);
    expect(table.stdout).toContain('s2 (this)');
    expect(table.stdout).toMatch(/^s1 /m);
    expect(table.stdout).toContain('leader');

    for (const name of ['api', 'web']) {
      const res = await fetch(s1.url('/v1/agent/service/register'), {
        method: 'PUT',
        headers: auth,
        body: JSON.stringify({ Name: name, Port: 8080, Connect: { SidecarService: {} } }),
      });
      expect(res.status).toBe(200);
    }
    // api's sidecar on s1, web's on s2 (which built it from what s1 wrote).
    const api = await connectProxy(s1, 'api-sidecar-proxy');
    const web = await connectProxy(s2, 'web-sidecar-proxy');
    try {
      for (const server of [s1, s2]) {
        const { status, headers, body } = await get<ProxyJson[]>(server, '/v1/xds/proxies');
        expect(status).toBe(200);
        expect(headers.get('isthmus-unreachable-servers')).toBeNull();
        const byId = Object.fromEntries(body.map((p) => [p.ID, p]));
        expect(Object.keys(byId).sort()).toEqual(['api-sidecar-proxy', 'web-sidecar-proxy']);
        expect(byId['api-sidecar-proxy']).toMatchObject({ Server: 's1', Kind: 'sidecar' });
        expect(byId['web-sidecar-proxy']).toMatchObject({ Server: 's2', Kind: 'sidecar' });
        expect(byId['api-sidecar-proxy']!.Types.CDS!.status).toBe('SYNCED');
        // One proxy, and its config, from whichever server it is connected to.
        const one = await get<ProxyJson>(server, '/v1/xds/proxies/api-sidecar-proxy');
        expect(one.body).toMatchObject({ ID: 'api-sidecar-proxy', Server: 's1' });
        const config = await get<{ Resources: { Name: string }[] }>(
          server,
          '/v1/xds/proxies/web-sidecar-proxy/config/clusters',
        );
        expect(config.status).toBe(200);
        expect(config.body.Resources.map((r) => r.Name)).toContain('local_app');
        // Troubleshoot reads the proxy's stream where it is.
        const check = await get<{ Checks: { Name: string; OK: boolean }[] }>(
          server,
          '/v1/troubleshoot/proxy/web-sidecar-proxy',
        );
        expect(check.status).toBe(200);
        expect(check.body.Checks.find((c) => /connected/i.test(c.Name))?.OK).toBe(true);
      }
      // CSDS on either server: both proxies, in node id order.
      expect(await csdsNodes(s1)).toEqual(['api-sidecar-proxy', 'web-sidecar-proxy']);
      expect(await csdsNodes(s2)).toEqual(['api-sidecar-proxy', 'web-sidecar-proxy']);
      // `?local=1` is one server's own view (what the fan-out asks for).
      const local = await get<ProxyJson[]>(s2, '/v1/xds/proxies?local=1');
      expect(local.body.map((p) => p.ID)).toEqual(['web-sidecar-proxy']);
      // The token is checked before any fan-out, and forwarded to the others.
      expect((await fetch(s2.url('/v1/xds/proxies'))).status).toBe(403);

      const status = await runCli([
        'proxy-status',
        ...['--http-addr', `127.0.0.1:${s2.httpPort}`, '--token', token],
      ]);
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toMatch(/^NAME +SERVER +KIND/);
      expect(status.stdout).toMatch(/^api-sidecar-proxy +s1 +sidecar +SYNCED/m);
      expect(status.stdout).toMatch(/^web-sidecar-proxy +s2 +sidecar +SYNCED/m);

      // A page open on s2 hears of a proxy change on s1 (its change stream relays s1's).
      const stream = await openChanges(s2);
      try {
        await stream.proxiesChange('the relay from s1 to open');
        api.close();
        await stream.proxiesChange("s1's proxy leaving");
      } finally {
        stream.close();
      }

      // kill -9 s1: s2 still answers at once, then lists s1 gone within the lease TTL (5 s).
      s1.child.kill('SIGKILL');
      await withDeadline(s1.exited, { timeoutMs: 10_000, what: 's1 to die' });
      const meanwhile = await get<ProxyJson[]>(s2, '/v1/xds/proxies');
      expect(meanwhile.status).toBe(200);
      expect(meanwhile.body.map((p) => p.ID)).toContain('web-sidecar-proxy');
      const gone = Date.now();
      await waitFor(async () => (await servers(s2)).map((s) => s.Name).join() === 's2', {
        timeoutMs: 20_000,
        what: 's2 to list s1 gone',
      });
      console.log(`a server killed -9 left the member list after ${Date.now() - gone} ms`);
      // s2 is the leader now, and lists its own proxy with no server missing.
      await waitFor(async () => (await servers(s2))[0]?.Leader === true, {
        timeoutMs: 20_000,
        what: 's2 to lead',
      });
      const after = await get<ProxyJson[]>(s2, '/v1/xds/proxies');
      expect(after.body.map((p) => `${p.ID}@${p.Server}`)).toEqual(['web-sidecar-proxy@s2']);
      expect(after.headers.get('isthmus-unreachable-servers')).toBeNull();
    } finally {
      api.close();
      web.close();
    }
  }, 120_000);

  it('a peering token names every server; it establishes with the server that made nothing down, and every server reads the stream ACTIVE', async () => {
    const aArgs = (name: string) => [
      ...['--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--etcd-prefix', 'members2/'],
      ...['--node-name', name, '--http-token', token, '--datacenter', 'dc-a'],
      ...['--peering-heartbeat-ms', '500'],
    ];
    const [a1, a2] = await Promise.all([
      startServerProcess(aArgs('a1')),
      startServerProcess(aArgs('a2')),
    ]);
    const b = await startServerProcess(['--datacenter', 'dc-b', '--http-token', token]);
    const both = await waitFor(
      async () => {
        const l = await servers(a2);
        return l.length === 2 && l.some((s) => s.Leader) ? l : undefined;
      },
      { timeoutMs: 15_000, what: 'a2 to list both servers and a leader' },
    );
    const post = async (s: ServerProcess, path: string, body: unknown) => {
      const res = await fetch(s.url(path), {
        method: 'POST',
        headers: auth,
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const generated = await post(a2, '/v1/peering/token', { PeerName: 'cluster-b' });
    expect(generated.status).toBe(200);
    const peeringToken = String(generated.body.PeeringToken);
    const decoded = JSON.parse(Buffer.from(peeringToken, 'base64').toString('utf8')) as {
      ServerAddresses: string[];
    };
    // Every server, the leader first (Consul's ServerAddresses).
    const leader = both.find((s) => s.Leader)!;
    expect(decoded.ServerAddresses).toEqual([
      leader.PeeringAddr,
      ...both.filter((s) => !s.Leader).map((s) => s.PeeringAddr),
    ]);
    expect(decoded.ServerAddresses.sort()).toEqual(
      [`127.0.0.1:${a1.peeringPort}`, `127.0.0.1:${a2.peeringPort}`].sort(),
    );

    // a1 made nothing; with it dead the token still establishes (a2, the leader once a1's lease
    // expired if a1 led).
    a1.child.kill('SIGKILL');
    await withDeadline(a1.exited, { timeoutMs: 10_000, what: 'a1 to die' });
    const established = await post(b, '/v1/peering/establish', {
      PeerName: 'cluster-a',
      PeeringToken: peeringToken,
    });
    expect(established.status, JSON.stringify(established.body)).toBe(200);
    const read = async (s: ServerProcess, name: string) =>
      (await get<{ State: string; Healthy: boolean }>(s, `/v1/peering/${name}`)).body;
    await waitFor(async () => (await read(b, 'cluster-a')).State === 'ACTIVE', {
      timeoutMs: 30_000,
      what: 'B to reach ACTIVE',
    });
    await waitFor(async () => (await read(a2, 'cluster-b')).State === 'ACTIVE', {
      timeoutMs: 10_000,
      what: 'a2 to read the peering ACTIVE',
    });
    // a1 back, a follower now: it reads the stream the leader holds, not a stale state.
    const again = await startServerProcess(aArgs('a1'));
    expect((await servers(again)).find((s) => s.Self)?.Leader).toBe(false);
    await waitFor(
      async () => {
        const p = await read(again, 'cluster-b');
        return p.State === 'ACTIVE' && p.Healthy;
      },
      { timeoutMs: 10_000, what: 'the follower a1 to read the peering ACTIVE and healthy' },
    );
  }, 120_000);

  it('with --store lmdb a server lists itself as the leader', async () => {
    const server = await startServerProcess(['--node-name', 'solo', '--http-token', token]);
    const list = await servers(server);
    expect(list).toEqual([expect.objectContaining({ Name: 'solo', Leader: true, Self: true })]);
  });
});
