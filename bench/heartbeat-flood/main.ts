/**
 * Issue 21 §3: a peer flooding heartbeats must not move the latency of local writes. Starts a real
 * `isthmus server` process, peers a hand-driven test dialer with it, and registers `--writes`
 * (300) services one after another, first quietly and then while the peer sends heartbeats as
 * fast as its stream takes them (`--heartbeats` (20,000) per round, rounds until the writes are
 * done). Prints registration latency p50/p99 both ways and their ratio, heartbeats sent, the
 * peering's state afterwards and the server's log bytes (bench/README.md). Exits 0 whatever the
 * figures, 1 if something breaks.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  cleanupProcesses,
  type ServerProcess,
  startServerProcess,
} from '../../test/helpers/process.js';
import { dialAsTestPeer, floodHeartbeats } from '../../test/helpers/test-peer.js';

function parseOptions(argv: readonly string[]): { writes: number; heartbeats: number } {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      writes: { type: 'string', default: '300' },
      heartbeats: { type: 'string', default: '20000' },
    },
  });
  const whole = (name: string, raw: string | undefined, max: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new Error(`--${name} must be a whole number from 1 to ${max}, got "${raw}"`);
    return n;
  };
  return {
    writes: whole('writes', values.writes, 100_000),
    heartbeats: whole('heartbeats', values.heartbeats, 10_000_000),
  };
}

async function api(server: ServerProcess, method: string, path: string, body?: unknown) {
  const res = await fetch(server.url(path), {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined };
}

/** Registers `count` services one at a time; the latency of each, in ms. */
async function registrations(server: ServerProcess, prefix: string, count: number) {
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await api(server, 'PUT', '/v1/agent/service/register', {
      Name: `${prefix}-${i}`,
      Address: '10.0.0.1',
      Port: 8080,
    });
    ms.push(performance.now() - start);
  }
  return ms;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function summary(ms: readonly number[]): { p50: number; p99: number; max: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN };
}

const fmt = (n: number) => `${n.toFixed(1)} ms`;

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const server = await startServerProcess(['--log-level', 'info']);
  const peer = await dialAsTestPeer((m, p, b) => api(server, m, p, b), 'flood');
  const logBytes = () => server.stdoutLines.reduce((n, l) => n + l.length + 1, 0);

  await registrations(server, 'warmup', 20);
  const quiet = summary(await registrations(server, 'quiet', opts.writes));

  let sent = 0;
  let flooding = true;
  const logBefore = logBytes();
  const flood = (async () => {
    while (flooding) {
      await floodHeartbeats(peer.stream, opts.heartbeats);
      sent += opts.heartbeats;
    }
  })();
  const floodStart = performance.now();
  const loaded = summary(await registrations(server, 'flood', opts.writes));
  flooding = false;
  await flood;
  const floodSeconds = (performance.now() - floodStart) / 1000;
  const peering = (await api(server, 'GET', '/v1/peering/flood')).body as {
    State: string;
    StreamStatus: { LastHeartbeat: string | null };
  };

  console.log(`registrations: ${opts.writes} each run, one at a time`);
  console.log(`  quiet:  p50 ${fmt(quiet.p50)}  p99 ${fmt(quiet.p99)}  max ${fmt(quiet.max)}`);
  console.log(`  flood:  p50 ${fmt(loaded.p50)}  p99 ${fmt(loaded.p99)}  max ${fmt(loaded.max)}`);
  console.log(`  p99 ratio flood/quiet: ${(loaded.p99 / quiet.p99).toFixed(2)}`);
  console.log(
    `heartbeats sent meanwhile: ${sent} in ${floodSeconds.toFixed(1)} s (${Math.round(sent / floodSeconds)}/s)`,
  );
  console.log(
    `peering afterwards: ${peering.State}, LastHeartbeat ${peering.StreamStatus.LastHeartbeat}`,
  );
  console.log(`server log during the flood: ${logBytes() - logBefore} bytes`);
  peer.close();
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanupProcesses();
}
