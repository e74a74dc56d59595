/**
 * bench:etcd-cluster (bench/README.md, issue 15 "Figures"): several isthmus servers on one etcd
 * against one server on LMDB, in the same run, with real server processes and fake Delta proxies
 * (proxy-worker.ts) spread over the servers.
 *
 * 1. Writes: `--proxies` services with sidecars (each with an upstream to `api`) registered
 *    through the HTTP API, 16 in flight, spread over the servers: registrations/s, p50/p99.
 * 2. Push: every sidecar connected (Delta, plaintext) to its server; `api`'s endpoint is moved
 *    through one server, `--rounds` times: per proxy, the time from the API call until it ACKed
 *    the EDS holding the new endpoint; p50/p99/max of every proxy in every round.
 * 3. Failover (etcd only): kill -9 of one server: per proxy of that server, the time until it
 *    ACKed its endpoints on another server. Then a second cluster peers with this one and the
 *    peering leader is killed -9: the time until the other side's peering is ACTIVE again, and
 *    until the new leader reports it ACTIVE too.
 *
 * Prints figures, asserts none; exits 1 only if something breaks (a deadline, a crashed worker).
 */
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import { type EtcdServer, startEtcd } from '../../test/helpers/etcd.js';
import {
  type ServerProcess,
  cleanupProcesses,
  startServerProcess,
} from '../../test/helpers/process.js';
import { waitFor, withDeadline } from '../../test/helpers/wait.js';
import { wallClockMs } from '../ads-fanout/protocol.js';
import { percentile } from '../ads-fanout/stats.js';
import { Fleet } from './fleet.js';

interface Options {
  readonly proxies: number;
  readonly servers: number;
  readonly rounds: number;
  readonly workers: number;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      proxies: { type: 'string', default: '10000' },
      servers: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '5' },
      workers: { type: 'string', default: '2' },
    },
  });
  const int = (name: keyof typeof values, min: number, max: number): number => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${values[name]}"`);
    return n;
  };
  return {
    proxies: int('proxies', 10, 20_000),
    servers: int('servers', 2, 9),
    rounds: int('rounds', 1, 100),
    workers: int('workers', 1, 16),
  };
}

/** Round r puts `api`'s sidecar on this port plus r; the proxies read the round from it. */
const markerPortBase = 50_000;
const sidecarId = (i: number) => `svc-${String(i).padStart(5, '0')}-sidecar-proxy`;
/** Plaintext, unauthenticated xDS on loopback: the fake proxies pay for neither TLS nor tokens. */
const serverArgs = ['--xds-plaintext', '--xds-auth', 'off', '--datacenter', 'dc1'];
const longMs = 1_800_000;
const began = performance.now();
/** Progress on stderr, so a slow phase on a loaded machine is visible. */
const step = (what: string) =>
  process.stderr.write(`[${((performance.now() - began) / 1000).toFixed(1)} s] ${what}\n`);

async function put(server: ServerProcess, path: string, body: unknown): Promise<void> {
  const res = await fetch(server.url(path), { method: 'PUT', body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`);
}

const moveApi = (server: ServerProcess, round: number) =>
  put(server, '/v1/agent/service/register', {
    ID: 'api',
    Name: 'api',
    Address: '127.0.0.1',
    Port: 8080,
    Connect: { SidecarService: { Port: markerPortBase + round } },
  });

interface Figures {
  readonly [what: string]: string;
}

const ms = (v: number) => `${v.toFixed(0)} ms`;
const spread = (values: readonly number[]) =>
  `p50 ${ms(percentile(values, 50))}, p99 ${ms(percentile(values, 99))}, max ${ms(percentile(values, 100))}`;

/** Registers service i with a sidecar whose upstream is `api`, 16 at a time over the servers. */
async function registerAll(servers: readonly ServerProcess[], count: number): Promise<string> {
  const latencies: number[] = [];
  let next = 0;
  const began = performance.now();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const t0 = performance.now();
      await put(servers[i % servers.length]!, '/v1/agent/service/register', {
        ID: `svc-${String(i).padStart(5, '0')}`,
        Name: `svc-${String(i).padStart(5, '0')}`,
        Address: '127.0.0.1',
        Port: 8080,
        Connect: {
          SidecarService: {
            Port: 30_000 + (i % 10_000),
            Proxy: { Upstreams: [{ DestinationName: 'api', LocalBindPort: 9191 }] },
          },
        },
      });
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  const seconds = (performance.now() - began) / 1000;
  return `${(count / seconds).toFixed(0)}/s; ${spread(latencies)}`;
}

/** Connects every proxy, then moves `api` `rounds` times through the first server. */
async function pushRounds(
  servers: readonly ServerProcess[],
  opts: Options,
  figures: Record<string, string>,
): Promise<Fleet> {
  const ids = Array.from({ length: opts.proxies }, (_, i) => sidecarId(i));
  const fleet = Fleet.start(opts.workers, {
    addresses: servers.map((s) => `127.0.0.1:${s.xdsPort}`),
    ids,
    homes: ids.map((_, i) => i % servers.length),
    markerPrefix: 'api.',
    markerPortBase,
  });
  const connectedAt = wallClockMs();
  const synced = await fleet.gather('synced', opts.proxies, longMs);
  step('every proxy synced; moving api');
  figures['connect → every proxy holds its endpoints'] = ms(Math.max(...synced) - connectedAt);
  const all: number[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    const t0 = wallClockMs();
    await moveApi(servers[0]!, round);
    const acked = await fleet.gather(`acked:${round}`, opts.proxies, longMs);
    all.push(...acked.map((t) => t - t0));
  }
  figures[`endpoint change → ACK, ${opts.rounds} rounds × ${opts.proxies} proxies`] = spread(all);
  return fleet;
}

/** Kills -9 the last server: how long its proxies take to hold their endpoints on another. */
async function proxyFailover(
  servers: ServerProcess[],
  fleet: Fleet,
  opts: Options,
  figures: Record<string, string>,
): Promise<void> {
  const victim = servers.length - 1;
  const orphans = Math.floor((opts.proxies - 1 - victim) / servers.length) + 1;
  const t0 = wallClockMs();
  servers[victim]!.child.kill('SIGKILL');
  await withDeadline(servers[victim]!.exited, { timeoutMs: 30_000, what: 'the server to die' });
  const resynced = await fleet.gather('resynced', orphans, longMs);
  figures[`kill -9 of a server → its ${orphans} proxies ACKed on another`] = spread(
    resynced.map((t) => t - t0),
  );
  servers.splice(victim, 1);
}

const peeringState = async (s: ServerProcess, name: string): Promise<string> => {
  const res = await fetch(s.url(`/v1/peering/${name}`)).catch(() => undefined);
  return res?.ok ? ((await res.json()) as { State: string }).State : 'NONE';
};

/** Peers an LMDB cluster with this one, kills -9 the leader, times the way back to ACTIVE. */
async function leaderFailover(
  etcd: EtcdServer,
  servers: ServerProcess[],
  figures: Record<string, string>,
): Promise<void> {
  const client = new Etcd3({ hosts: `http://${etcd.endpoint}` });
  try {
    const leaderOf = async () => {
      const value = await client.get('bench.leader').string();
      return servers.find((s) => value?.endsWith(`:${s.peeringPort}`));
    };
    const leader =
      (await waitFor(leaderOf, { timeoutMs: 30_000, what: 'a leader' })) ?? servers[0]!;
    // The token names the server that made it: one that survives the leader.
    const other = servers.find((s) => s !== leader)!;
    const peer = await startServerProcess(['--datacenter', 'dc-peer', ...serverArgs.slice(0, 3)]);
    const tokenRes = await fetch(other.url('/v1/peering/token'), {
      method: 'POST',
      body: JSON.stringify({ PeerName: 'peer' }),
    });
    const { PeeringToken } = (await tokenRes.json()) as { PeeringToken: string };
    const established = await fetch(peer.url('/v1/peering/establish'), {
      method: 'POST',
      body: JSON.stringify({ PeerName: 'cluster', PeeringToken }),
    });
    if (established.status !== 200) throw new Error(`establish: ${established.status}`);
    await waitFor(async () => (await peeringState(peer, 'cluster')) === 'ACTIVE', {
      timeoutMs: 60_000,
      what: 'the peering ACTIVE',
    });
    const tokenAddresses = (
      JSON.parse(Buffer.from(PeeringToken, 'base64').toString('utf8')) as {
        ServerAddresses: string[];
      }
    ).ServerAddresses;
    const t0 = wallClockMs();
    leader.child.kill('SIGKILL');
    servers.splice(servers.indexOf(leader), 1);
    const states: string[] = [];
    const back = await waitFor(
      async () => {
        const state = await peeringState(peer, 'cluster');
        if (states.at(-1) !== state) states.push(state);
        return states.length > 1 && state === 'ACTIVE' && wallClockMs();
      },
      { timeoutMs: 60_000, intervalMs: 20, what: 'the peer ACTIVE again' },
    ).catch(() => undefined);
    const what = 'kill -9 of the peering leader → peer side ACTIVE again';
    if (!back) {
      // A finding, not a crash: say what the dialer had to go on, and what the survivors logged.
      for (const line of [...servers, peer].flatMap((s) => s.stdoutLines))
        if (/peering|leader/i.test(line)) process.stderr.write(`${line}\n`);
      figures[what] =
        `not within 60 s (token names ${tokenAddresses.join(', ')}; leader was :${leader.peeringPort}; peer states ${states.join(' → ')})`;
      return;
    }
    figures[what] = ms(back - t0);
    const ownBack = await waitFor(
      async () => {
        const now = await leaderOf();
        return now && (await peeringState(now, 'peer')) === 'ACTIVE' && wallClockMs();
      },
      { timeoutMs: 60_000, intervalMs: 20, what: 'the new leader ACTIVE' },
    );
    figures['kill -9 of the peering leader → new leader reports ACTIVE'] = ms(ownBack - t0);
  } finally {
    client.close();
  }
}

async function runCluster(opts: Options, etcd: EtcdServer | undefined): Promise<Figures> {
  const figures: Record<string, string> = {};
  const args = etcd
    ? [
        ...serverArgs,
        '--store',
        'etcd',
        '--etcd-endpoints',
        etcd.endpoint,
        '--etcd-prefix',
        'bench/',
      ]
    : serverArgs;
  const count = etcd ? opts.servers : 1;
  const servers = await Promise.all(
    Array.from({ length: count }, () => startServerProcess(args, { timeoutMs: 120_000 })),
  );
  let fleet: Fleet | undefined;
  try {
    step(`${count} server(s) started${etcd ? ' on etcd' : ' on LMDB'}; registering`);
    await moveApi(servers[0]!, 0);
    figures['HTTP registrations (16 in flight)'] = await registerAll(servers, opts.proxies);
    step('registered; connecting the proxies');
    fleet = await pushRounds(servers, opts, figures);
    if (etcd) {
      step('rounds done; killing a server');
      await proxyFailover(servers, fleet, opts, figures);
      step('proxies failed over; peering, then killing the leader');
      await leaderFailover(etcd, servers, figures);
    }
    return figures;
  } finally {
    fleet?.stop();
    await cleanupProcesses();
  }
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const etcd = await startEtcd();
  const results: [string, Figures][] = [];
  try {
    results.push([`${opts.servers} servers on one etcd`, await runCluster(opts, etcd)]);
    results.push(['1 server on LMDB', await runCluster(opts, undefined)]);
  } finally {
    await etcd.stop();
  }
  console.log(`\netcd cluster vs LMDB: ${opts.proxies} proxies (Delta), ${opts.rounds} rounds\n`);
  for (const [title, figures] of results) {
    console.log(title);
    for (const [what, value] of Object.entries(figures))
      console.log(`  ${what.padEnd(62)} ${value}`);
  }
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    console.error(err);
    await cleanupProcesses();
    process.exit(1);
  },
);
