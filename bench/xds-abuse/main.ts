/**
 * Replays issue 18's attacks on the xDS port against a real `isthmus server` process and prints
 * its RSS before, during and after, `/healthz` latency meanwhile, and whether a real proxy still
 * connects (bench/README.md):
 *   1. `--messages` (24) unauthenticated messages of `--size-mb` (60) MB, all at once;
 *   2. `--streams` (2,050) idle unauthenticated streams against `--xds-max-streams 2000`, with
 *      `--xds-auth token` (the default) and again with `--xds-auth off`.
 * `--repo DIR` runs the server of another checkout (after its `npm ci`), e.g. main before the fix.
 * Exits 0 whatever the figures, 1 if something breaks.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { adsClient, connectDelta } from '../../test/helpers/fake-envoy.js';
import {
  cleanupProcesses,
  type ServerProcess,
  startServerProcess,
} from '../../test/helpers/process.js';
import { openRawStream, rawAdsClient, tokenMetadata } from '../../test/helpers/raw-ads.js';
import { waitFor } from '../../test/helpers/wait.js';
import { TypeUrl } from '../../src/xds/types.js';

interface Options {
  readonly messages: number;
  readonly sizeMb: number;
  readonly streams: number;
  readonly repo: string;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      messages: { type: 'string', default: '24' },
      'size-mb': { type: 'string', default: '60' },
      streams: { type: 'string', default: '2050' },
      repo: { type: 'string', default: resolve(import.meta.dirname, '../..') },
    },
  });
  const whole = (name: string, raw: string | undefined, max: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new Error(`--${name} must be a whole number from 1 to ${max}, got "${raw}"`);
    return n;
  };
  return {
    messages: whole('messages', values.messages, 1_000),
    sizeMb: whole('size-mb', values['size-mb'], 1_000),
    streams: whole('streams', values.streams, 100_000),
    repo: resolve(values.repo),
  };
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

function rss(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

/** Samples RSS and /healthz latency until stopped: the peak of each. */
function sampler(server: ServerProcess) {
  let peakRss = 0;
  let worstHealthMs = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peakRss = Math.max(peakRss, rss(server.child.pid!));
      const started = performance.now();
      await fetch(server.url('/healthz')).catch(() => undefined);
      worstHealthMs = Math.max(worstHealthMs, performance.now() - started);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { peakRss, worstHealthMs };
    },
  };
}

const idle = (ms: number) => new Promise((r) => setTimeout(r, ms));

function countCodes(codes: readonly (grpc.status | 'open')[]): string {
  const counts = new Map<string, number>();
  for (const c of codes) {
    const name = c === 'open' ? 'still open' : grpc.status[c];
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return [...counts].map(([k, v]) => `${v} ${k}`).join(', ');
}

/** Ends of `streams` that came within `ms`. */
async function endings(
  streams: readonly { ended: Promise<grpc.StatusObject> }[],
  ms: number,
): Promise<(grpc.status | 'open')[]> {
  const timeout = idle(ms).then(() => 'open' as const);
  return Promise.all(streams.map((s) => Promise.race([s.ended.then((st) => st.code), timeout])));
}

/** Whether a proxy with `metadata` gets admitted (listed in /v1/xds/proxies) within 10 s. */
async function realProxyConnects(server: ServerProcess, metadata: grpc.Metadata): Promise<string> {
  const client = adsClient(`127.0.0.1:${server.xdsPort}`, await server.xdsTls());
  const envoy = connectDelta(client, 'web', metadata);
  envoy.send(TypeUrl.cluster, { subscribe: ['*'] });
  const listed = waitFor(
    async () => {
      const res = await fetch(server.url('/v1/xds/proxies'));
      return ((await res.json()) as { ID: string }[]).some((p) => p.ID === 'web');
    },
    { timeoutMs: 10_000, what: 'web listed' },
  ).then(() => 'yes');
  const refused = envoy.ended.then((s) => `no (${grpc.status[s.code]}: ${s.details})`);
  try {
    return await Promise.race([listed, refused]).catch(() => 'no (not admitted within 10 s)');
  } finally {
    envoy.close();
    client.close();
  }
}

async function start(opts: Options, args: readonly string[]): Promise<ServerProcess> {
  const command = [
    process.execPath,
    join(opts.repo, 'bin/run-ts.js'),
    join(opts.repo, 'src/cli/main.ts'),
  ];
  return startServerProcess(['--xds-max-streams', '2000', ...args], {
    command,
    cwd: opts.repo,
  });
}

async function createToken(server: ServerProcess): Promise<string> {
  const res = await fetch(server.url('/v1/acl/token'), {
    method: 'POST',
    body: JSON.stringify({ ProxyID: 'web' }),
  });
  return ((await res.json()) as { SecretID: string }).SecretID;
}

async function floodMessages(opts: Options): Promise<void> {
  const server = await start(opts, []);
  const token = await createToken(server);
  await idle(2_000);
  const before = rss(server.child.pid!);
  const client = rawAdsClient(`127.0.0.1:${server.xdsPort}`, await server.xdsTls());
  const body = Buffer.alloc(opts.sizeMb * 1024 * 1024, 0x0a);
  const sampling = sampler(server);
  const started = performance.now();
  const streams = Array.from({ length: opts.messages }, () => openRawStream(client));
  for (const s of streams) s.write(body);
  const codes = await endings(streams, 120_000);
  const tookMs = performance.now() - started;
  const { peakRss, worstHealthMs } = await sampling.stop();
  client.close();
  await idle(5_000);
  const after = rss(server.child.pid!);
  const proxy = await realProxyConnects(server, tokenMetadata(token));
  console.log(
    `\n1. ${opts.messages} unauthenticated ${opts.sizeMb} MB messages (--xds-auth token)`,
  );
  console.log(`   streams ended:      ${countCodes(codes)} in ${(tookMs / 1000).toFixed(1)} s`);
  console.log(`   RSS before:         ${mb(before)}`);
  console.log(`   RSS peak during:    ${mb(peakRss)}`);
  console.log(`   RSS 5 s after:      ${mb(after)}`);
  console.log(`   /healthz worst:     ${worstHealthMs.toFixed(0)} ms`);
  console.log(`   real proxy admitted: ${proxy}`);
  server.child.kill('SIGTERM');
  await server.exited;
}

async function idleStreams(opts: Options, auth: 'token' | 'off', label: string): Promise<void> {
  const server = await start(opts, ['--xds-auth', auth]);
  const token = await createToken(server);
  await idle(1_000);
  const before = rss(server.child.pid!);
  // A few connections, as an attacker would open (one HTTP/2 connection per 500 streams).
  const tls = await server.xdsTls();
  const clients = Array.from({ length: Math.ceil(opts.streams / 500) }, () =>
    rawAdsClient(`127.0.0.1:${server.xdsPort}`, tls),
  );
  const streams = Array.from({ length: opts.streams }, (_, i) =>
    openRawStream(clients[i % clients.length]!),
  );
  const early = await endings(streams, 3_000);
  const during = rss(server.child.pid!);
  const proxy = await realProxyConnects(
    server,
    auth === 'token' ? tokenMetadata(token) : new grpc.Metadata(),
  );
  const late = await endings(streams, 15_000);
  const after = rss(server.child.pid!);
  console.log(
    `\n${label}. ${opts.streams} idle unauthenticated streams, --xds-max-streams 2000, --xds-auth ${auth}`,
  );
  console.log(`   within 3 s:         ${countCodes(early)}`);
  console.log(`   within 15 s more:   ${countCodes(late)}`);
  console.log(`   RSS before/during/after: ${mb(before)} / ${mb(during)} / ${mb(after)}`);
  console.log(`   real proxy admitted while they were open: ${proxy}`);
  for (const s of streams) s.close();
  for (const c of clients) c.close();
  server.child.kill('SIGTERM');
  await server.exited;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  console.log(`xDS abuse replay (issue 18), server from ${opts.repo}`);
  await floodMessages(opts);
  await idleStreams(opts, 'token', '2');
  await idleStreams(opts, 'off', '3');
}

main()
  .then(() => cleanupProcesses())
  .then(() => process.exit(0))
  .catch(async (err: unknown) => {
    console.error(err);
    await cleanupProcesses();
    process.exit(1);
  });
