/**
 * The xDS fan-out benchmark (bench/README.md). This process is the server; forked client workers
 * are the proxies. It prints a report and exits 0 whatever the figures, 1 if something breaks.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runCdsMicro } from './cds-micro.js';
import { runPushMicro } from './push-micro.js';
import { roundProfiler } from './profile.js';
import { RawBench, type RawRound } from './raw-phase.js';
import { printReport, type Report } from './report.js';
import { hasGc } from './stats.js';
import { deltaRequest } from './proxies.js';
import { TypeUrl } from '../../src/xds/types.js';
import { WorkerPool } from './workers.js';
import { clientKinds } from '../shared/bidi-client.js';
import { XdsBench, type RunOptions, type XdsRound } from './xds-phase.js';

function positive(name: string, value: string, limit: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > limit)
    throw new Error(`--${name} must be an integer from 1 to ${limit}, got "${value}"`);
  return n;
}

function parseOptions(argv: readonly string[]): RunOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      clients: { type: 'string', default: '1000' },
      workers: { type: 'string', default: '4' },
      rounds: { type: 'string', default: '15' },
      api: { type: 'string', default: 'delta' },
      conn: { type: 'string', default: 'proxy' },
      client: { type: 'string', default: 'h2' },
      profile: { type: 'string' },
    },
  });
  if (values.api !== 'delta' && values.api !== 'sotw')
    throw new Error(`--api must be delta or sotw, got "${values.api}"`);
  if (values.conn !== 'proxy' && values.conn !== 'worker')
    throw new Error(`--conn must be proxy or worker, got "${values.conn}"`);
  const client = clientKinds.find((k) => k === values.client);
  if (!client)
    throw new Error(`--client must be ${clientKinds.join(' or ')}, got "${values.client}"`);
  const clients = positive('clients', values.clients, 10_000);
  return {
    clients,
    workers: Math.min(clients, positive('workers', values.workers, 64)),
    rounds: positive('rounds', values.rounds, 1_000),
    api: values.api,
    conn: values.conn,
    client,
    profile: values.profile,
  };
}

/**
 * With a connection per proxy the server holds a socket per proxy (the raw streams ride the same
 * connections). Warns (Linux) when the open-file limit is lower than that.
 */
function warnAboutFileLimit(opts: RunOptions): void {
  let limits: string;
  try {
    limits = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return;
  }
  const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? Infinity);
  const need = (opts.conn === 'proxy' ? opts.clients : opts.workers) + 200;
  if (soft < need)
    console.error(
      `warning: the open-file limit is ${soft}, the server needs about ${need}; raise it (ulimit -n ${need}) or use --conn worker`,
    );
}

/**
 * Push rounds and raw rounds alternate, so the ratio compares rounds run back to back under the
 * same machine load (the machine may be shared).
 */
async function run(pool: WorkerPool, opts: RunOptions): Promise<Omit<Report, 'cds' | 'own'>> {
  const xds = new XdsBench(pool, opts);
  try {
    const setup = await xds.open();
    const raw = new RawBench(pool, setup.edsResponse, xds.grpcServer);
    await raw.open(opts.clients);
    const pushRounds: XdsRound[] = [];
    const rawRounds: RawRound[] = [];
    const rawAckRounds: RawRound[] = [];
    // What a proxy writes to ACK an endpoint push (Delta: type URL and nonce).
    const ackBytes = deltaRequest(undefined, TypeUrl.endpoint, [], '1000').length;
    const profiler = await roundProfiler(opts.profile);
    for (let r = 1; r <= opts.rounds + 1; r++) {
      pushRounds.push(await xds.round(r, profiler));
      rawRounds.push(await raw.round(r));
      rawAckRounds.push(await raw.round(r, ackBytes));
    }
    profiler.close();
    await raw.close();
    await xds.close();
    return {
      opts,
      gc: hasGc,
      setup,
      push: pushRounds,
      raw: rawRounds,
      rawAck: rawAckRounds,
      ackBytes,
    };
  } catch (err) {
    await xds.abort();
    throw err;
  }
}

const usage =
  'usage: npm run bench:ads-fanout -- [--clients N] [--workers W] [--rounds R] [--api delta|sotw] [--conn proxy|worker] [--client h2|grpc-js] [--profile PREFIX]';

async function main(): Promise<void> {
  let opts: RunOptions;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`);
    process.exit(2);
  }
  warnAboutFileLimit(opts);
  const pool = await WorkerPool.start(opts.workers);
  const stop = () => pool.stop();
  process.on('exit', stop);
  try {
    const fanout = await run(pool, opts);
    await pool.close();
    printReport({ ...fanout, cds: await runCdsMicro(), own: await runPushMicro(opts.clients) });
  } finally {
    pool.stop();
    process.off('exit', stop);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench:ads-fanout failed: ${(err as Error)?.stack ?? String(err)}`);
    process.exit(1);
  },
);
