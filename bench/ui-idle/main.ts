/**
 * Issue 17: what an open web UI costs an idle server. Starts a server in this process (so
 * `process.cpuUsage()` is the server's, plus idle fake proxies), registers `--proxies` (200)
 * sidecars, connects a Delta fake Envoy for each and lets them sync. Then it measures the CPU over
 * `--seconds` (10) twice: with no UI, and with one UI's change stream (`GET /v1/ui/events`) open.
 * Last, with the UI still open, one more proxy connects and it times how long the `proxies`
 * change takes to reach the stream. Exits 0 whatever the figures, 1 if something breaks.
 */
import { parseArgs } from 'node:util';
import type { EnvoyLike } from '../../test/helpers/envoy-like.js';
import { startMeshServer } from '../../test/helpers/mesh-server.js';

function parseOptions(argv: readonly string[]): { proxies: number; seconds: number } {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      proxies: { type: 'string', default: '200' },
      seconds: { type: 'string', default: '10' },
    },
  });
  const whole = (name: string, raw: string | undefined, max: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new Error(`--${name} must be a whole number from 1 to ${max}, got "${raw}"`);
    return n;
  };
  return {
    proxies: whole('proxies', values.proxies, 5_000),
    seconds: whole('seconds', values.seconds, 600),
  };
}

/** CPU milliseconds (user + system) this process spends over `seconds` of wall time. */
async function cpuOver(seconds: number): Promise<number> {
  const before = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

/** An open change stream: the frames' topics as they arrive. */
function followEvents(url: string) {
  const abort = new AbortController();
  const frames: { at: number; topics: string[] }[] = [];
  const reading = (async () => {
    const res = await fetch(url, { signal: abort.signal });
    if (!res.ok || !res.body) throw new Error(`GET ${url}: ${res.status}`);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const data = /^data: (.*)$/m.exec(buffer.slice(0, end))?.[1];
        buffer = buffer.slice(end + 2);
        if (data) frames.push({ at: performance.now(), topics: JSON.parse(data).topics ?? [] });
      }
    }
  })().catch((err: Error) => {
    if (err.name !== 'AbortError') throw err;
  });
  return { frames, close: () => abort.abort(), reading };
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const node = await startMeshServer();
  const envoys: EnvoyLike[] = [];
  try {
    for (let i = 0; i < opts.proxies; i++)
      await node.register({
        Name: `svc-${i}`,
        Address: '127.0.0.1',
        Port: 10_000 + i,
        Connect: { SidecarService: {} },
      });
    for (let i = 0; i < opts.proxies; i++)
      envoys.push(await node.connect(`svc-${i}-sidecar-proxy`));
    for (const e of envoys) await e.settle(300, 60_000);
    const quiet = await cpuOver(opts.seconds);
    const ui = followEvents(`http://${node.httpAddress}/v1/ui/events`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const open = await cpuOver(opts.seconds);
    const framesWhileIdle = ui.frames.filter((f) => f.topics.length > 0).length;
    const started = performance.now();
    await node.register({
      Name: 'late',
      Address: '127.0.0.1',
      Port: 9_999,
      Connect: { SidecarService: {} },
    });
    envoys.push(await node.connect('late-sidecar-proxy'));
    const deadline = Date.now() + 30_000;
    let seen: number | undefined;
    while (seen === undefined && Date.now() < deadline) {
      seen = ui.frames.find((f) => f.at >= started && f.topics.includes('proxies'))?.at;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    ui.close();
    await ui.reading;
    console.log(`proxies connected and synced: ${opts.proxies}`);
    console.log(`server CPU over ${opts.seconds} s, no UI:      ${quiet.toFixed(0)} ms`);
    console.log(`server CPU over ${opts.seconds} s, one UI open: ${open.toFixed(0)} ms`);
    console.log(`change frames sent while idle: ${framesWhileIdle}`);
    console.log(
      seen === undefined
        ? 'FAIL: no proxies change reached the stream within 30 s of a proxy connecting'
        : `a new proxy reached the stream as a proxies change after ${(seen - started).toFixed(0)} ms (registration included)`,
    );
  } finally {
    for (const e of envoys) e.close();
    await node.close();
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(1);
  },
);
