/**
 * The registration benchmark (bench/README.md, issue 14 "Registration at scale"): a real
 * `isthmus server` takes `--services` services with sidecars through the HTTP API (8 requests in
 * flight), and a watching sidecar with an upstream to the first service is connected over Delta
 * xDS the whole time. It prints how long the registrations took, the time from the last
 * registration's answer to a quiet server (no snapshot built for a second), and how long the next
 * endpoint moves (the first service's sidecar port changes) take to reach the watcher's EDS.
 * `--profile DIR` runs the server under `node --cpu-prof` and leaves the profile in DIR. Exits 0
 * whatever the figures, 1 if something breaks.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { TypeUrl } from '../../src/xds/types.js';
import { adsClient, connectDelta, type DeltaEnvoy } from '../../test/helpers/fake-envoy.js';
import {
  type ServerProcess,
  cleanupProcesses,
  cliCommand,
  startServerProcess,
} from '../../test/helpers/process.js';
import { waitFor, withDeadline } from '../../test/helpers/wait.js';
import {
  call,
  registerFleet,
  serviceName,
  sidecarBuilds,
  stopWith,
} from '../../test/faults/fleet.js';

interface Options {
  readonly services: number;
  readonly moves: number;
  readonly profile: string | undefined;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      services: { type: 'string', default: '1000' },
      moves: { type: 'string', default: '5' },
      profile: { type: 'string' },
    },
  });
  const services = Number(values.services);
  if (!Number.isInteger(services) || services < 10 || services > 20_000)
    throw new Error(`--services must be an integer from 10 to 20000, got "${values.services}"`);
  const moves = Number(values.moves);
  if (!Number.isInteger(moves) || moves < 1 || moves > 100)
    throw new Error(`--moves must be an integer from 1 to 100, got "${values.moves}"`);
  return { services, moves, profile: values.profile };
}

const watcherId = 'watcher-sidecar-proxy';

/** The sidecar port of the first service's sidecar at move `n` (30000 is where it starts). */
const movedPort = (n: number) => 40_000 + n;

async function registerWatcher(server: ServerProcess): Promise<void> {
  const res = await call(server, 'PUT', '/v1/agent/service/register', {
    ID: 'watcher',
    Name: 'watcher',
    Address: '127.0.0.1',
    Port: 9090,
    Connect: {
      SidecarService: {
        Port: 29_999,
        Proxy: { Upstreams: [{ DestinationName: serviceName(0), LocalBindPort: 19_000 }] },
      },
    },
  });
  if (res.status !== 200) throw new Error(`register watcher: ${res.status}`);
}

/** Every port in a decoded ClusterLoadAssignment (ts-proto: `portSpecifier` is a oneof). */
function endpointPorts(message: unknown): number[] {
  if (Array.isArray(message)) return message.flatMap(endpointPorts);
  if (typeof message !== 'object' || message === null) return [];
  const { $case, value } = message as { $case?: unknown; value?: unknown };
  if ($case === 'portValue' && typeof value === 'number') return [value];
  return Object.values(message).flatMap(endpointPorts);
}

/** The watcher's Delta stream: CDS wildcard, then EDS for what CDS names; ACKs everything. */
class Watcher {
  private readonly ports = new Map<string, number[]>();
  private readonly envoy: DeltaEnvoy;
  private readonly close: () => void;
  private onEds: (() => void) | undefined;

  constructor(server: ServerProcess, tls: Awaited<ReturnType<ServerProcess['xdsTls']>>) {
    const client = adsClient(`127.0.0.1:${server.xdsPort}`, tls);
    this.envoy = connectDelta(client, watcherId) as DeltaEnvoy;
    this.close = () => {
      this.envoy.close();
      client.close();
    };
    this.envoy.send(TypeUrl.cluster, { subscribe: ['*'] });
    void this.loop();
  }

  private async loop(): Promise<void> {
    for (;;) {
      const r = await this.envoy.next(3_600_000).catch(() => undefined);
      if (!r) return;
      if (r.typeUrl === TypeUrl.cluster) {
        const eds = r.resources.map((c) => c.name);
        if (eds.length > 0) this.envoy.send(TypeUrl.endpoint, { subscribe: eds });
      }
      if (r.typeUrl === TypeUrl.endpoint) {
        for (const c of r.resources) this.ports.set(c.name, endpointPorts(c.message));
        this.onEds?.();
      }
      this.envoy.ack(r);
    }
  }

  /** Resolves when some EDS resource holds an endpoint on `port`. */
  async seesPort(port: number, timeoutMs: number): Promise<void> {
    const has = () => [...this.ports.values()].some((ports) => ports.includes(port));
    await withDeadline(
      new Promise<void>((resolve) => {
        if (has()) return resolve();
        this.onEds = () => {
          if (has()) resolve();
        };
      }),
      { timeoutMs, what: `an endpoint on port ${port} at the watcher` },
    );
  }

  stop(): void {
    this.close();
  }
}

/**
 * When (`performance.now()`) the sidecar build counter last moved before it stayed the same for
 * `quietMs` (polled every 100 ms).
 */
async function lastBuildAt(server: ServerProcess, quietMs = 1_000): Promise<number> {
  let last = await sidecarBuilds(server);
  let lastChange = performance.now();
  await waitFor(
    async () => {
      const builds = await sidecarBuilds(server);
      if (builds !== last) {
        last = builds;
        lastChange = performance.now();
      }
      return performance.now() - lastChange >= quietMs;
    },
    { timeoutMs: 600_000, intervalMs: 100, what: 'no snapshot built for a second' },
  );
  return lastChange;
}

async function moveFirst(server: ServerProcess, watcher: Watcher, n: number): Promise<number> {
  const began = performance.now();
  const res = await call(server, 'PUT', '/v1/agent/service/register', {
    ID: serviceName(0),
    Name: serviceName(0),
    Address: '127.0.0.1',
    Port: 8080,
    Connect: { SidecarService: { Port: movedPort(n) } },
  });
  if (res.status !== 200) throw new Error(`move ${serviceName(0)}: ${res.status}`);
  await watcher.seesPort(movedPort(n), 600_000);
  return performance.now() - began;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const [node, ...rest] = cliCommand;
  const command = opts.profile
    ? [node!, '--cpu-prof', `--cpu-prof-dir=${opts.profile}`, ...rest]
    : cliCommand;
  const server = await startServerProcess(['--xds-auth', 'off'], { command, timeoutMs: 120_000 });
  const rows: [string, string][] = [];
  const loadAtStart = load();
  try {
    await registerWatcher(server);
    const watcher = new Watcher(server, await server.xdsTls());
    // The first service before the rest, so the watcher's EDS holds it from the start.
    await registerFleet(server, 0, 1, 1);
    await watcher.seesPort(30_000, 60_000);

    let began = performance.now();
    const cpuAtStart = cpuMs(server);
    await registerFleet(server, 1, opts.services);
    const registerMs = performance.now() - began;
    const cpuAtLast = cpuMs(server);
    rows.push([
      `register ${opts.services} services with sidecars (HTTP API, 8 at a time)`,
      `${fmt(registerMs)} (${fmt(registerMs / opts.services, 2)} per registration)`,
    ]);
    began = performance.now();
    const firstMove = await moveFirst(server, watcher, 0);
    rows.push(['last registration → first endpoint move at the watcher', fmt(firstMove)]);
    const quietAt = await lastBuildAt(server);
    const cpuAtQuiet = cpuMs(server);
    const loadAtQuiet = load();
    rows.push([
      'last registration → quiet server (last snapshot build, ±100 ms)',
      fmt(Math.max(quietAt, began + firstMove) - began),
    ]);
    const perService = (ms: number) => `${fmt(ms)} (${fmt(ms / opts.services, 2)} per service)`;
    rows.push(['server CPU while registering', perService(cpuAtLast - cpuAtStart)]);
    // Includes the first move and the 1 s of quiet the wait needs (about 0.1 s of CPU).
    rows.push([
      'server CPU from the last registration to quiet',
      perService(cpuAtQuiet - cpuAtLast),
    ]);
    const moves: number[] = [];
    for (let n = 1; n <= opts.moves; n++) moves.push(await moveFirst(server, watcher, n));
    moves.sort((a, b) => a - b);
    rows.push([
      `next ${opts.moves} endpoint moves → watcher (median, max)`,
      `${fmt(moves[Math.floor(moves.length / 2)]!)}, ${fmt(moves[moves.length - 1]!)}`,
    ]);
    rows.push(['sidecar snapshots built', String(await sidecarBuilds(server))]);
    rows.push([
      'load average (1, 5, 15 min) at the start → at quiet',
      `${loadAtStart} → ${loadAtQuiet}`,
    ]);
    watcher.stop();
    const stop = await stopWith(server, 'SIGTERM');
    if (stop.code !== 0) throw new Error(`server exited ${stop.code} ${stop.signal}`);
  } finally {
    await cleanupProcesses();
  }
  console.log(`\nregistration at scale: ${opts.services} services with sidecars\n`);
  for (const [what, value] of rows) console.log(`  ${what.padEnd(66)} ${value}`);
  if (opts.profile) console.log(`\n  server CPU profile in ${opts.profile}`);
}

/**
 * CPU the server process used so far (user + system, every thread: key generation runs in the
 * thread pool), ms. Unlike wall time it barely moves with the machine's load.
 */
function cpuMs(server: ServerProcess): number {
  const stat = readFileSync(`/proc/${server.child.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** The machine's load average: on a shared machine the figures follow it. */
function load(): string {
  return loadavg()
    .map((n) => n.toFixed(1))
    .join(' ');
}

function fmt(ms: number, digits = 0): string {
  return `${ms.toFixed(digits)} ms`;
}

// The watcher's stream and the gRPC channel are closed, but grpc-js keeps timers a while.
main().then(
  () => process.exit(0),
  async (err: unknown) => {
    console.error(err);
    await cleanupProcesses();
    process.exit(1);
  },
);
