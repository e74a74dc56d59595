/**
 * bench:reconnect-storm (bench/README.md): N Delta proxies each end their stream and reconnect
 * `--reconnects` times at random moments over `--seconds`, while endpoints move and services leave
 * and come back. At the end every proxy must hold exactly its view (0 missing, stale or extra
 * resources), the server must hold exactly N streams, and its heap must be back to where it was.
 * Exits 0 whatever the figures, 1 if something breaks.
 */
import { performance } from 'node:perf_hooks';
import { hasGc, sampleMemory } from '../ads-fanout/stats.js';
import {
  change,
  consistentWithin,
  describe,
  load,
  memLine,
  options,
  runBench,
  startFleet,
  stopFleet,
  type Fleet,
} from './common.js';

const usage =
  'npm run bench:reconnect-storm -- [--proxies 1000] [--reconnects 20] [--seconds 60] [--workers 4] [--services 2000] [--upstreams 10] [--changes-per-second 40]';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const o = options(
    usage,
    {
      proxies: 1_000,
      reconnects: 20,
      seconds: 60,
      workers: 4,
      'per-connection': 1,
      services: 2_000,
      upstreams: 10,
      'changes-per-second': 40,
    },
    { proxies: 15_000, workers: 64 },
  );
  console.log(
    `bench:reconnect-storm: ${o.proxies} Delta proxies × ${o.reconnects} reconnects over ${o.seconds} s, ${o['changes-per-second']} config changes/s; load average ${load()}`,
  );
  if (!hasGc) console.log('warning: no GC hook: heap figures are not after a collection');
  let fleet: Fleet | undefined;
  try {
    fleet = await startFleet(
      { proxies: o.proxies, services: o.services, upstreams: o.upstreams },
      o.workers,
      o['per-connection'],
    );
    const { server, pool, views } = fleet;
    console.log(`initially: ${describe((await consistentWithin(fleet, 60_000)).consistency)}`);
    const memBefore = await sampleMemory();
    console.log(memLine('memory before the storm', memBefore));
    await pool.counters(true);

    // The storm runs in the workers; meanwhile this process changes config on a schedule: one
    // change in five takes a service out of every view (or brings it back), the rest move an
    // endpoint.
    let stormDone = false;
    const storm = pool
      .all(
        { kind: 'storm', times: o.reconnects, overMs: o.seconds * 1000 },
        o.seconds * 1000 + 60_000,
      )
      .finally(() => (stormDone = true));
    const t0 = performance.now();
    let changes = 0;
    let publishes = 0;
    while (!stormDone) {
      const due = Math.floor(((performance.now() - t0) / 1000) * o['changes-per-second']);
      for (; changes < due; changes++) {
        const s = views.randomService();
        publishes += changes % 5 === 4 ? views.toggleService(s) : views.moveEndpoint(s);
      }
      await sleep(10);
    }
    await storm;
    const stormMs = performance.now() - t0;
    const { consistency, ms } = await consistentWithin(fleet, 120_000);
    const c = await pool.counters(true);
    const memAfter = await sampleMemory();
    const streams = server.metrics.xdsStreams;
    const gauge = (await streams.get()).values.reduce((a, v) => a + v.value, 0);
    console.log(memLine('memory after the storm', memAfter));
    console.log(`
| figure | value | target |
| --- | --- | --- |
| reconnects (storm + retries) | ${c.reconnects} over ${(stormMs / 1000).toFixed(1)} s | ${o.proxies * o.reconnects} |
| config changes during the storm (views published) | ${changes} (${publishes}) | |
| after the storm: all reconnected and consistent | ${(ms / 1000).toFixed(2)} s | |
| consistency at the end | ${describe(consistency)} | 0 missing / stale / extra |
| streams: server sessions / isthmus_xds_streams gauge | ${server.server.openCount} / ${gauge} | ${o.proxies} / ${o.proxies} |
| heap after / before (after GC) | ${change(memBefore.heapUsed, memAfter.heapUsed)} | back to baseline (±10 %) |
| streams that ended with an error (last one) | ${c.streamErrors} (${c.lastError || 'none'}) | |
| responses on streams the clients had cancelled | ${c.staleData} | |

load average ${load()}`);
  } finally {
    await stopFleet(fleet);
  }
}

runBench('reconnect-storm', main);
