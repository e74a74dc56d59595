/**
 * The restart benchmark (bench/README.md, issue 21 section 2): a real `isthmus server` over a data
 * directory holding `--proxies` sidecars (seeded through the HTTP API), restarted; it prints how
 * long until `/readyz` answers 200 and the last proxy built gets its first CDS, how long a SIGTERM
 * takes idle and in the middle of the first rebuild (and its exit code), and whether a SIGKILL in
 * the middle of the rebuild loses any service. Exits 0 whatever the figures, 1 if something breaks.
 */
import { parseArgs } from 'node:util';
import {
  type ServerProcess,
  cleanupProcesses,
  startServerProcess,
  tempDir,
} from '../../test/helpers/process.js';
import { waitFor } from '../../test/helpers/wait.js';
import {
  firstClusters,
  readyz,
  registerFleet,
  serviceNames,
  sidecarId,
  stopWith,
} from '../../test/faults/fleet.js';

const serverArgs = ['--xds-auth', 'off'];

function parseOptions(argv: readonly string[]): { proxies: number } {
  const { values } = parseArgs({
    args: [...argv],
    options: { proxies: { type: 'string', default: '2001' } },
  });
  const proxies = Number(values.proxies);
  if (!Number.isInteger(proxies) || proxies < 10 || proxies > 20_000)
    throw new Error(`--proxies must be an integer from 10 to 20000, got "${values.proxies}"`);
  return { proxies };
}

/** Ms from now until `/readyz` answers 200 (polled every 10 ms). */
async function untilReady(server: ServerProcess): Promise<number> {
  const began = performance.now();
  await waitFor(async () => (await readyz(server)).status === 200, {
    timeoutMs: 600_000,
    intervalMs: 10,
    what: '/readyz 200',
  });
  return performance.now() - began;
}

/** Waits until the first rebuild is under way (some restored proxies built, not all). */
async function midRebuild(server: ServerProcess, proxies: number): Promise<number> {
  return waitFor(
    async () => {
      const pending = (await readyz(server)).body.pending?.proxiesWithoutSnapshot ?? 0;
      return pending > 0 && pending < proxies * 0.8 ? pending : undefined;
    },
    { timeoutMs: 600_000, intervalMs: 5, what: 'the first rebuild to be under way' },
  );
}

async function main(): Promise<void> {
  const { proxies } = parseOptions(process.argv.slice(2));
  const dataDir = tempDir('isthmus-bench-restart-');
  const restart = () => startServerProcess(serverArgs, { dataDir, timeoutMs: 120_000 });
  const rows: [string, string][] = [];

  const seeding = await restart();
  let began = performance.now();
  await registerFleet(seeding, 0, proxies);
  rows.push([`seed ${proxies} services with sidecars (HTTP API, 8 at a time)`, ms(began)]);
  await stopWith(seeding, 'SIGTERM');

  began = performance.now();
  const server = await restart();
  const startedMs = performance.now() - began;
  const first = await readyz(server);
  const readyMs = await untilReady(server);
  rows.push(['spawn to "server started" (store restored, ports bound)', `${fmt(startedMs)}`]);
  rows.push([
    `/readyz at "server started"`,
    `${first.status} ${JSON.stringify(first.body.pending ?? {})}`,
  ]);
  rows.push(['"server started" to /readyz 200 (every proxy published)', fmt(readyMs)]);
  began = performance.now();
  const clusters = await firstClusters(server, sidecarId(proxies - 1));
  rows.push([`/readyz 200 to the last proxy's first CDS (${clusters.length} clusters)`, ms(began)]);
  let exit = await stopWith(server, 'SIGTERM');
  rows.push(['SIGTERM, idle: exit', `${exit.code} after ${exit.ms} ms`]);

  const interrupted = await restart();
  const pending = await midRebuild(interrupted, proxies);
  exit = await stopWith(interrupted, 'SIGTERM');
  rows.push([
    `SIGTERM during the first rebuild (${pending} proxies pending): exit`,
    `${exit.code} after ${exit.ms} ms`,
  ]);

  const killed = await restart();
  await midRebuild(killed, proxies);
  exit = await stopWith(killed, 'SIGKILL');
  began = performance.now();
  const after = await restart();
  const names = await serviceNames(after);
  await untilReady(after);
  const kept = [...names].filter((n) => n.startsWith('svc-')).length;
  rows.push([
    'SIGKILL during the first rebuild, then restart: services kept',
    `${kept} of ${2 * proxies}`,
  ]);
  rows.push(['restart after the SIGKILL to /readyz 200', `${fmt(performance.now() - began)}`]);
  await stopWith(after, 'SIGTERM');

  console.log(`restart with ${proxies} sidecars (node ${process.version})\n`);
  console.log('| what | figure |');
  console.log('|---|---|');
  for (const [what, figure] of rows) console.log(`| ${what} | ${figure} |`);
}

const fmt = (msValue: number): string => `${(msValue / 1000).toFixed(2)} s`;
const ms = (since: number): string => fmt(performance.now() - since);

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(cleanupProcesses);
