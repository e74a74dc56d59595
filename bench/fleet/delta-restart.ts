/**
 * bench:delta-restart (bench/README.md): restarts an xDS server that has N synced Delta proxies
 * and measures how long until all are back and consistent, what the server re-sent, and whether
 * the old server let go of its streams (heap after a GC against before). Exits 0 whatever the
 * figures, 1 if something breaks.
 */
import { performance } from 'node:perf_hooks';
import { hasGc, sampleMemory } from '../ads-fanout/stats.js';
import {
  change,
  consistentWithin,
  describe,
  kb,
  listenOverflows,
  load,
  memLine,
  options,
  runBench,
  startFleet,
  stopFleet,
  type Fleet,
} from './common.js';

const usage =
  'npm run bench:delta-restart -- [--proxies 10000] [--workers 4] [--per-connection 1] [--services 100] [--upstreams 10] [--restarts 2]';

async function main(): Promise<void> {
  const o = options(
    usage,
    { proxies: 10_000, workers: 4, 'per-connection': 1, services: 100, upstreams: 10, restarts: 2 },
    { proxies: 15_000, workers: 64 },
  );
  console.log(
    `bench:delta-restart: ${o.proxies} Delta proxies in ${o.workers} workers, ${o.upstreams} upstreams each of ${o.services} services; load average ${load()}`,
  );
  if (!hasGc) console.log('warning: no GC hook: heap figures are not after a collection');
  let fleet: Fleet | undefined;
  try {
    fleet = await startFleet(
      { proxies: o.proxies, services: o.services, upstreams: o.upstreams },
      o.workers,
      o['per-connection'],
    );
    const { server, pool } = fleet;
    const first = await consistentWithin(fleet, 60_000);
    console.log(`initially: ${describe(first.consistency)}`);
    const memBefore = await sampleMemory();
    console.log(memLine('memory before restarts', memBefore));
    await pool.counters(true);
    const rows: string[] = [];
    for (let r = 1; r <= o.restarts; r++) {
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const overflows0 = listenOverflows();
      const old = await server.restart();
      const restartedMs = performance.now() - t0;
      console.log(
        `restart ${r}: old server shut down and new one listening after ${restartedMs.toFixed(0)} ms`,
      );
      const { consistency, ms } = await consistentWithin(fleet, 120_000);
      const total = restartedMs + ms;
      const cpu = process.cpuUsage(cpu0);
      const cpuS = (cpu.user + cpu.system) / 1e6;
      const overflows1 = listenOverflows();
      const c = await pool.counters(true);
      const responses = Object.values(c.responses).reduce((a, b) => a + b, 0);
      const mem = await sampleMemory();
      rows.push(
        [
          `restart ${r}`,
          `${(total / 1000).toFixed(2)} s`,
          `${cpuS.toFixed(1)} s (${((cpuS / o.proxies) * 1e6).toFixed(0)} µs per proxy)`,
          overflows0 === undefined || overflows1 === undefined
            ? 'n/a'
            : `${overflows1 - overflows0}`,
          `${c.resources}`,
          `${responses}`,
          kb(c.bytes),
          `${c.reconnects}`,
          `${old.openCount}`,
          `${server.server.connectedCount}`,
          `${describe(consistency)}`,
          `${change(memBefore.heapUsed, mem.heapUsed)}`,
        ].join(' | '),
      );
      console.log(memLine(`memory after restart ${r}`, mem));
      console.log(`  load average ${load()}; last stream error seen: ${c.lastError || 'none'}`);
    }
    const memAfter = await sampleMemory();
    console.log(
      '\n| restart | all reconnected and consistent | server CPU meanwhile | listen overflows (host) | resources re-sent | responses | bytes received | reconnects | old server streams | new server streams | consistency | heap vs before |',
    );
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const row of rows) console.log(`| ${row} |`);
    const heap = change(memBefore.heapUsed, memAfter.heapUsed);
    const withinTen = Math.abs(memAfter.heapUsed - memBefore.heapUsed) <= 0.1 * memBefore.heapUsed;
    console.log(
      `\nheap after the last restart: ${heap} of before (target ±10 %: ${withinTen ? 'met' : 'MISSED'}); load average ${load()}`,
    );
  } finally {
    await stopFleet(fleet);
  }
}

runBench('delta-restart', main);
