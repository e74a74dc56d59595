/**
 * WAN federation propagation (bench/README.md, docs/architecture.md §6c): three `isthmus server`
 * processes (dc1 primary, dc2, dc3), each with a real Envoy mesh gateway exposing its servers and
 * one real Envoy sidecar (`web`) in each secondary. Each round writes a `service-intentions` entry
 * for `web` on the primary denying a new source, and measures how long until each secondary's
 * sidecar Envoy holds it (its RBAC filter names the source): the primary's write, the replication
 * stream through the gateways, the secondary's store and snapshot rebuild, and xDS to the Envoy.
 * Prints the figures; exits 1 if a round misses its bound or something breaks. Every process it
 * started is stopped in every case.
 */
import { parseArgs } from 'node:util';
import { closeApps, listenPort, startApp } from '../../test/envoy/apps.js';
import {
  cleanupEnvoys,
  type EnvoyProcess,
  envoyBinary,
  envoyVersion,
} from '../../test/envoy/harness.js';
import {
  type FederatedDatacenterOptions,
  startFederatedDatacenter,
} from '../../test/envoy/federation.js';
import { federationSecretFile } from '../../test/helpers/federation-server.js';
import { startPlacedProxy, waitAllSynced, withSidecar } from '../../test/envoy/mesh.js';
import { cleanupProcesses } from '../../test/helpers/process.js';
import { waitFor } from '../../test/helpers/wait.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '10' },
    'bound-ms': { type: 'string', default: '15000' },
    'coalesce-ms': { type: 'string', default: '100' },
  },
});
const positive = (name: string, raw: string): number => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000)
    throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  return n;
};
const rounds = positive('rounds', values.rounds);
const boundMs = positive('bound-ms', values['bound-ms']);
const coalesceMs = positive('coalesce-ms', values['coalesce-ms']);

const secondaries = ['dc2', 'dc3'] as const;

/** Every server binds its federation port on 127.0.0.1; a secondary joins through dc1's gateway. */
const options = (secretFile: string, primaryWan?: number): FederatedDatacenterOptions => ({
  primaryDatacenter: 'dc1',
  secretFile,
  flags: { coalesceMs: String(coalesceMs) },
  ...(primaryWan === undefined ? {} : { primaryGatewayWanPort: primaryWan }),
});

/** Whether an Envoy's config names `text` anywhere (the RBAC principal of the new source). */
async function holds(envoy: EnvoyProcess, text: string): Promise<boolean> {
  return JSON.stringify(await envoy.configDump()).includes(text);
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] ?? 0;
};

async function main(): Promise<number> {
  if (!envoyBinary()) {
    console.error('envoy is not on the PATH');
    return 1;
  }
  const secretFile = federationSecretFile();
  const dc1 = await startFederatedDatacenter('dc1', options(secretFile));
  const placed = [dc1.gateway];
  const sidecars = new Map<string, EnvoyProcess>();
  for (const dc of secondaries) {
    const d = await startFederatedDatacenter(dc, options(secretFile, dc1.gatewayPorts.wan));
    placed.push(d.gateway);
    const app = await startApp('tcp', `web-${dc}`);
    await d.server.register(withSidecar('web', app.port, await listenPort()));
    const sidecar = await startPlacedProxy(d.server, 'web-sidecar-proxy', { datacenter: dc });
    placed.push(sidecar);
    sidecars.set(dc, sidecar.envoy);
  }
  await waitAllSynced(placed);
  console.log(
    `WAN federation propagation: envoy ${envoyVersion()}, ${rounds} rounds, coalesce ${coalesceMs} ms`,
  );
  console.log('round | dc2 Envoy (ms) | dc3 Envoy (ms)');
  const times = new Map<string, number[]>(secondaries.map((dc) => [dc, []]));
  let missed = 0;
  for (let round = 0; round < rounds; round++) {
    const source = `caller-${round}-${Date.now().toString(36)}`;
    const t0 = performance.now();
    await dc1.server.putConfig({
      Kind: 'service-intentions',
      Name: 'web',
      Sources: [{ Name: source, Action: 'deny' }],
    });
    const row: string[] = [];
    await Promise.all(
      secondaries.map(async (dc) => {
        try {
          await waitFor(() => holds(sidecars.get(dc)!, `/svc/${source}`), {
            timeoutMs: boundMs,
            intervalMs: 10,
            what: `${dc}'s web Envoy to hold the intention from ${source}`,
          });
          times.get(dc)!.push(performance.now() - t0);
        } catch {
          missed++;
          times.get(dc)!.push(Number.NaN);
        }
      }),
    );
    for (const dc of secondaries) row.push(times.get(dc)!.at(-1)!.toFixed(0).padStart(14));
    console.log(`${String(round + 1).padStart(5)} | ${row.join(' | ')}`);
  }
  for (const dc of secondaries) {
    const ok = times.get(dc)!.filter((t) => !Number.isNaN(t));
    console.log(
      `${dc}: median ${median(ok).toFixed(0)} ms, max ${Math.max(...ok).toFixed(0)} ms over ${ok.length} rounds`,
    );
  }
  if (missed > 0) console.log(`FAIL: ${missed} round(s) missed the ${boundMs} ms bound`);
  return missed > 0 ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error((err as Error).message);
} finally {
  await cleanupEnvoys();
  await closeApps();
  await cleanupProcesses();
}
process.exit(code);
