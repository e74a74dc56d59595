/**
 * bench:churn (bench/README.md): `--rate` endpoint changes per second for `--minutes` over
 * `--services` services with `--proxies` Delta proxies connected. Samples the server's event-loop
 * lag, CPU, RSS and heap every `--sample-seconds`, prints them per minute with the trend from the
 * first minute to the last, and checks every proxy is consistent at the end. Exits 0 whatever the
 * figures, 1 if something breaks.
 */
import { loadavg } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { hasGc, sampleMemory } from '../ads-fanout/stats.js';
import {
  change,
  consistentWithin,
  describe,
  load,
  mb,
  memLine,
  options,
  runBench,
  startFleet,
  stopFleet,
  type Fleet,
} from './common.js';
import { TypeUrl } from '../../src/xds/types.js';

const usage =
  'npm run bench:churn -- [--minutes 10] [--rate 200] [--proxies 1000] [--services 10000] [--upstreams 100] [--workers 4] [--sample-seconds 10]';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample {
  /** Seconds since the churn began, at the end of the sample. */
  readonly at: number;
  /** The sample's length (s). */
  readonly seconds: number;
  readonly lagP99Ms: number;
  readonly lagMaxMs: number;
  /** Server CPU over the sample, % of one core. */
  readonly cpu: number;
  readonly rss: number;
  readonly heap: number;
  readonly changes: number;
  /** Views published (a change goes to every proxy that has the service). */
  readonly publishes: number;
  /** EDS responses the proxies received. */
  readonly pushes: number;
  readonly load: number;
}

async function main(): Promise<void> {
  const o = options(
    usage,
    {
      minutes: 10,
      rate: 200,
      proxies: 1_000,
      services: 10_000,
      upstreams: 100,
      workers: 4,
      'per-connection': 1,
      'sample-seconds': 10,
    },
    { proxies: 15_000, workers: 64, minutes: 600 },
  );
  console.log(
    `bench:churn: ${o.rate} endpoint changes/s for ${o.minutes} min over ${o.services} services, ${o.proxies} Delta proxies with ${o.upstreams} upstreams each; load average ${load()}`,
  );
  if (!hasGc) console.log('warning: no GC hook: heap figures are not after a collection');
  let fleet: Fleet | undefined;
  try {
    fleet = await startFleet(
      { proxies: o.proxies, services: o.services, upstreams: o.upstreams },
      o.workers,
      o['per-connection'],
    );
    const { pool, views } = fleet;
    console.log(`initially: ${describe((await consistentWithin(fleet, 60_000)).consistency)}`);
    const memBefore = await sampleMemory();
    console.log(memLine('memory before the churn', memBefore));
    await pool.counters(true);

    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const samples: Sample[] = [];
    const durationMs = o.minutes * 60_000;
    const t0 = performance.now();
    let changes = 0;
    let publishes = 0;
    let sampleStart = { at: t0, cpu: process.cpuUsage(), changes: 0, publishes: 0 };
    let sampling: Promise<void> | undefined;
    // Everything but the proxies' counters is read before the first await: the loop below starts
    // the next sample meanwhile.
    const takeSample = async (now: number) => {
      const from = sampleStart;
      const cpu = process.cpuUsage(from.cpu);
      const mem = process.memoryUsage();
      const sample = {
        at: (now - t0) / 1000,
        seconds: (now - from.at) / 1000,
        lagP99Ms: lag.percentile(99) / 1e6,
        lagMaxMs: lag.max / 1e6,
        cpu: ((cpu.user + cpu.system) / 1000 / (now - from.at)) * 100,
        rss: mem.rss,
        heap: mem.heapUsed,
        changes: changes - from.changes,
        publishes: publishes - from.publishes,
        load: loadavg()[0]!,
      };
      lag.reset();
      const c = await pool.counters(true);
      samples.push({ ...sample, pushes: c.responses[TypeUrl.endpoint] ?? 0 });
    };
    for (;;) {
      const now = performance.now();
      if (now - t0 >= durationMs) break;
      // Changes due by now, at most 10 per turn of the event loop (as a builder yields between
      // proxies): a server that cannot keep up falls behind the rate rather than blocking.
      const due = Math.min(changes + 10, Math.floor(((now - t0) / 1000) * o.rate));
      for (; changes < due; changes++) publishes += views.moveEndpoint(views.randomService());
      if (!sampling && now - sampleStart.at >= o['sample-seconds'] * 1000) {
        sampling = takeSample(now).finally(() => (sampling = undefined));
        sampleStart = { at: now, cpu: process.cpuUsage(), changes, publishes };
      }
      const behind = changes < Math.floor(((performance.now() - t0) / 1000) * o.rate);
      await (behind ? new Promise((r) => setImmediate(r)) : sleep(5));
    }
    await sampling;
    await takeSample(performance.now());
    lag.disable();
    const elapsedS = (performance.now() - t0) / 1000;
    const { consistency, ms } = await consistentWithin(fleet, 120_000);
    const memAfter = await sampleMemory();

    console.log(
      '\n| minute | changes/s | lag p99 (max) ms | CPU % of a core | RSS | heap | EDS pushes per proxy per s | views published per proxy per s | load |',
    );
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    // Samples in groups of a minute (the last group takes the final, shorter sample too).
    const perGroup = Math.max(1, Math.round(60 / o['sample-seconds']));
    const perMinute: Sample[][] = [];
    samples.forEach((sample, i) => {
      const m = Math.min(
        Math.floor(i / perGroup),
        Math.max(0, Math.ceil(samples.length / perGroup) - 1),
      );
      (perMinute[m] ??= []).push(sample);
    });
    perMinute.forEach((inMinute, m) => {
      const sum = (f: (s: Sample) => number) => inMinute.reduce((a, s) => a + f(s), 0);
      const secs = sum((s) => s.seconds);
      const last = inMinute[inMinute.length - 1]!;
      console.log(
        `| ${m + 1} | ${(sum((s) => s.changes) / secs).toFixed(0)} | ${Math.max(...inMinute.map((s) => s.lagP99Ms)).toFixed(1)} (${Math.max(...inMinute.map((s) => s.lagMaxMs)).toFixed(0)}) | ${(sum((s) => s.cpu * s.seconds) / secs).toFixed(0)} | ${mb(last.rss)} | ${mb(last.heap)} | ${(sum((s) => s.pushes) / secs / o.proxies).toFixed(2)} | ${(sum((s) => s.publishes) / secs / o.proxies).toFixed(2)} | ${last.load.toFixed(1)} |`,
      );
    });
    const first = perMinute[0];
    const lastMinute = perMinute[perMinute.length - 1];
    const avg = (xs: Sample[] | undefined, f: (s: Sample) => number) =>
      xs ? xs.reduce((a, s) => a + f(s), 0) / xs.length : NaN;
    const totalPushes = samples.reduce((a, s) => a + s.pushes, 0);
    console.log(`
| figure | value |
| --- | --- |
| changes applied | ${changes} in ${elapsedS.toFixed(0)} s (${(changes / elapsedS).toFixed(0)}/s) |
| views published per proxy per second | ${(publishes / elapsedS / o.proxies).toFixed(2)} |
| EDS pushes received per proxy per second | ${(totalPushes / elapsedS / o.proxies).toFixed(2)} (${((totalPushes / Math.max(1, publishes)) * 100).toFixed(0)} % of the views published: the rest coalesced) |
| event-loop lag p99, first → last minute | ${Math.max(...(first ?? []).map((s) => s.lagP99Ms)).toFixed(1)} → ${Math.max(...(lastMinute ?? []).map((s) => s.lagP99Ms)).toFixed(1)} ms |
| CPU, first → last minute | ${avg(first, (s) => s.cpu).toFixed(0)} → ${avg(lastMinute, (s) => s.cpu).toFixed(0)} % of a core |
| RSS, first → last minute (mean of samples) | ${mb(avg(first, (s) => s.rss))} → ${mb(avg(lastMinute, (s) => s.rss))} |
| heap after GC, before → after the churn | ${mb(memBefore.heapUsed)} → ${mb(memAfter.heapUsed)} (${change(memBefore.heapUsed, memAfter.heapUsed)}) |
| RSS after GC, before → after the churn | ${mb(memBefore.rss)} → ${mb(memAfter.rss)} (${change(memBefore.rss, memAfter.rss)}) |
| consistent at the end (after ${(ms / 1000).toFixed(1)} s) | ${describe(consistency)} |

load average ${load()}`);
  } finally {
    await stopFleet(fleet);
  }
}

runBench('churn', main);
