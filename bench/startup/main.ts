/**
 * The startup benchmark (bench/README.md, issue 13 item 2): how long the `isthmus` command takes to
 * print its version (`node bin/isthmus.js` and `npx isthmus`), how long `isthmus server` takes from
 * the spawn until its HTTP health endpoint answers, and the server's RSS once it has idled. Every
 * figure is the median of `--runs` runs. `--repo DIR` measures another checkout (after its `npm
 * ci`) with this script, so two trees compare in one session. Prints a report and exits 0 whatever
 * the figures, 1 if something breaks.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../../test/helpers/process.js';
import { waitFor, withDeadline } from '../../test/helpers/wait.js';

interface Options {
  readonly runs: number;
  readonly idleMs: number;
  readonly repo: string;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      runs: { type: 'string', default: '5' },
      'idle-ms': { type: 'string', default: '10000' },
      repo: { type: 'string', default: resolve(import.meta.dirname, '../..') },
    },
  });
  const runs = Number(values.runs);
  const idleMs = Number(values['idle-ms']);
  if (!Number.isInteger(runs) || runs < 1 || runs > 100)
    throw new Error(`--runs must be an integer from 1 to 100, got "${values.runs}"`);
  if (!Number.isInteger(idleMs) || idleMs < 0)
    throw new Error(`--idle-ms must be a whole number of ms, got "${values['idle-ms']}"`);
  return { runs, idleMs, repo: resolve(values.repo) };
}

/** How `isthmus` is started: `[command, ...args]`, run in the repository. */
const launchers = {
  node: [process.execPath, 'bin/isthmus.js'],
  npx: ['npx', '--no-install', 'isthmus'],
} as const;
type Launcher = keyof typeof launchers;

const median = (xs: readonly number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function start(repo: string, launcher: Launcher, args: readonly string[]): ChildProcess {
  const [command, ...prefix] = launchers[launcher];
  return spawn(command, [...prefix, ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Wall-clock ms of `isthmus --version`, spawn to exit. */
async function timeVersion(repo: string, launcher: Launcher): Promise<number> {
  const began = performance.now();
  const child = start(repo, launcher, ['--version']);
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c));
  child.stderr!.on('data', (c: Buffer) => (output += c));
  const code = await withDeadline(new Promise<number | null>((done) => child.on('close', done)), {
    timeoutMs: 60_000,
    what: `${launcher} isthmus --version`,
  });
  if (code !== 0) throw new Error(`${launcher} isthmus --version exited ${code}: ${output}`);
  return performance.now() - began;
}

/** Parent pid of every process, from /proc. */
function parentPids(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // The process exited while being listed.
    }
  }
  return parents;
}

/** `pid` and its descendants. */
function processTree(pid: number): number[] {
  const parents = parentPids();
  const tree = [pid];
  for (let i = 0; i < tree.length; i++)
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  return tree;
}

const rssBytes = (pid: number): number =>
  Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

/** The process of the tree that runs the server: a `node` whose arguments include `server`. */
function serverPid(tree: readonly number[]): number {
  const pid = tree.findLast((p) => {
    const [command, ...args] = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
    return /(^|\/)node$/.test(command ?? '') && args.includes('server');
  });
  if (pid === undefined) throw new Error(`no server process among ${tree.join(', ')}`);
  return pid;
}

interface ServerRun {
  readonly healthyMs: number;
  readonly serverRss: number;
  readonly treeRss: number;
}

/** Starts `isthmus server`, times it to a 200 from /healthz, idles, reads RSS, stops it. */
async function timeServer(repo: string, launcher: Launcher, idleMs: number): Promise<ServerRun> {
  const dataDir = mkdtempSync(join(tmpdir(), 'isthmus-bench-startup-'));
  const httpPort = await freePort();
  const began = performance.now();
  const child = start(repo, launcher, [
    ...['server', '--data-dir', dataDir, '--http-addr', `127.0.0.1:${httpPort}`],
    ...['--xds-addr', '127.0.0.1:0', '--peering-addr', '127.0.0.1:0'],
  ]);
  let stderr = '';
  child.stdout!.resume();
  child.stderr!.on('data', (c: Buffer) => (stderr += c));
  const closed = new Promise<void>((done) => child.on('close', () => done()));
  try {
    await waitFor(() => fetch(`http://127.0.0.1:${httpPort}/healthz`).then((res) => res.ok), {
      timeoutMs: 60_000,
      intervalMs: 5,
      what: `${launcher} isthmus server to answer /healthz`,
    }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; stderr: ${stderr}`);
    });
    const healthyMs = performance.now() - began;
    await new Promise((idle) => setTimeout(idle, idleMs));
    const tree = processTree(child.pid!);
    const server = serverPid(tree);
    const run = {
      healthyMs,
      serverRss: rssBytes(server),
      treeRss: tree.reduce((sum, p) => sum + rssBytes(p), 0),
    };
    process.kill(server, 'SIGTERM');
    await withDeadline(closed, { timeoutMs: 30_000, what: `${launcher} isthmus server to stop` });
    return run;
  } finally {
    const running = child.exitCode === null && child.signalCode === null;
    for (const pid of running ? processTree(child.pid!).reverse() : []) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const ms = (x: number) => `${Math.round(x)} ms`;
const mb = (x: number) => `${Math.round(x / 2 ** 20)} MB`;

/** One row of the report: the median, then every run. */
function row(what: string, values: readonly number[], unit: (x: number) => string): void {
  console.log(`| ${what} | ${unit(median(values))} | ${values.map(unit).join(', ')} |`);
}

const labels: Record<Launcher, string> = { node: 'node bin/isthmus.js', npx: 'npx isthmus' };

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const { version } = JSON.parse(readFileSync(join(opts.repo, 'package.json'), 'utf8'));
  console.log(`startup of ${opts.repo} (isthmus ${version}, node ${process.version})`);
  console.log(`${opts.runs} runs each; RSS read after ${opts.idleMs} ms of idling\n`);
  console.log('| what | median | runs |');
  console.log('|---|---|---|');
  for (const launcher of ['node', 'npx'] as const) {
    const times: number[] = [];
    for (let i = 0; i < opts.runs; i++) times.push(await timeVersion(opts.repo, launcher));
    row(`\`${labels[launcher]} --version\``, times, ms);
  }
  for (const launcher of ['node', 'npx'] as const) {
    const runs: ServerRun[] = [];
    for (let i = 0; i < opts.runs; i++)
      runs.push(await timeServer(opts.repo, launcher, opts.idleMs));
    const name = `\`${labels[launcher]} server\``;
    row(
      `${name} to /healthz`,
      runs.map((r) => r.healthyMs),
      ms,
    );
    row(
      `${name} RSS, idle`,
      runs.map((r) => r.serverRss),
      mb,
    );
    if (launcher === 'npx')
      row(
        `${name} RSS with npx`,
        runs.map((r) => r.treeRss),
        mb,
      );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
