/**
 * What one key per proxy instance costs (issue 18; bench/README.md): a leaf, that is an ECDSA P-256
 * key pair and a signed certificate, per proxy instead of per service. For each proxy count:
 *
 * 1. **CA**: a fresh built-in CA is asked for N instances' leaves at once (N holders over
 *    `--services` SPIFFE IDs), as a restart or a rotation asks for them: leaves/s, time until all
 *    are issued, CPU, event-loop lag while they are, and heap and external memory per leaf held.
 * 2. **Start**: a SnapshotManager over N registered sidecars, with the real CA and the real
 *    publisher into an XdsCache, from `start()` until every proxy's view is published: time,
 *    event-loop lag and memory per proxy, once with a leaf per instance (now) and once with one
 *    per service identity (before issue 18).
 *
 * Prints a report; exits 0 whatever the figures, 1 if something breaks.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { type CertificateAuthority, openCa } from '../../src/ca/index.js';
import { silentLogger } from '../../src/log.js';
import { serviceSpiffeId } from '../../src/mesh/names.js';
import { Metrics } from '../../src/metrics.js';
import { LeafUsers } from '../../src/snapshot/leaf-users.js';
import { SnapshotManager } from '../../src/snapshot/manager.js';
import { openLmdbStore } from '../../src/store/index.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { SnapshotPublisher } from '../../src/xds/snapshot-publisher.js';
import { FakeCatalog } from '../../test/helpers/fake-catalog.js';
import { cpuMs, hasGc, type MemorySample, sampleMemory } from '../ads-fanout/stats.js';
import { registerInstance } from '../snapshot/catalogs.js';
import { IndexedCatalog } from '../snapshot/indexed-catalog.js';

interface Options {
  readonly proxies: readonly number[];
  readonly maxIssuing: readonly number[];
  readonly services: number;
  readonly only: 'ca' | 'start' | undefined;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      proxies: { type: 'string', default: '1000,10000' },
      'max-issuing': { type: 'string', default: '2' },
      services: { type: 'string', default: '100' },
      only: { type: 'string' },
    },
  });
  const list = (flag: string, text: string) =>
    text.split(',').map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1 || n > 100_000)
        throw new Error(`--${flag} takes whole numbers from 1 to 100000, got "${s}"`);
      return n;
    });
  const only = values.only;
  if (only !== undefined && only !== 'ca' && only !== 'start')
    throw new Error(`--only is ca or start, got "${only}"`);
  const [services] = list('services', values.services);
  return {
    proxies: list('proxies', values.proxies),
    maxIssuing: list('max-issuing', values['max-issuing']),
    services: services!,
    only,
  };
}

interface Run {
  readonly label: string;
  readonly n: number;
  readonly ms: number;
  readonly cpuMs: number;
  /** Event-loop delay while it ran, ms. */
  readonly lag: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Heap and external (incl. array buffers) bytes per leaf or proxy, after a forced GC. */
  readonly heapPer: number;
  readonly externalPer: number;
  readonly leaves: number;
}

/** A fresh store and CA in a temporary directory; `done` closes both and removes it. */
async function freshCa(maxIssuing: number) {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-bench-leaves-'));
  const store = await openLmdbStore(dir);
  const ca = await openCa(store, { dataDir: dir, logger: silentLogger(), maxIssuing });
  const done = async () => {
    await ca.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { ca, done };
}

/** Times `work` with the event-loop delay, CPU and memory around it. */
async function measure(
  work: () => Promise<number>,
): Promise<Omit<Run, 'label' | 'n' | 'heapPer' | 'externalPer'> & { before: MemorySample }> {
  const before = await sampleMemory();
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const leaves = await work();
  const ms = performance.now() - t0;
  const cpu = cpuMs(process.cpuUsage(cpu0));
  lag.disable();
  const toMs = (ns: number) => ns / 1e6;
  return {
    ms,
    cpuMs: cpu,
    lag: { p50: toMs(lag.percentile(50)), p99: toMs(lag.percentile(99)), max: toMs(lag.max) },
    leaves,
    before,
  };
}

async function perHolder(run: Awaited<ReturnType<typeof measure>>, n: number) {
  const after = await sampleMemory();
  return {
    heapPer: (after.heapUsed - run.before.heapUsed) / n,
    externalPer: (after.external - run.before.external) / n,
  };
}

/** 1. N holders' leaves asked for at once. */
async function caRun(n: number, services: number, maxIssuing: number): Promise<Run> {
  const { ca, done } = await freshCa(maxIssuing);
  try {
    const ids = Array.from({ length: services }, (_, s) =>
      serviceSpiffeId(ca.trustDomain, 'dc1', { name: `service-${s}` }),
    );
    const run = await measure(async () => {
      const leaves = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          ca.leaf({ spiffeId: ids[i % services]!, holder: `service-${i % services}-${i}-proxy` }),
        ),
      );
      return new Set(leaves.map((l) => l.keyPem)).size;
    });
    return { label: `CA, ${maxIssuing} at once`, n, ...run, ...(await perHolder(run, n)) };
  } finally {
    await done();
  }
}

/** The CA as proxies used it before issue 18: one leaf per SPIFFE ID, shared by every instance. */
function perIdentity(ca: CertificateAuthority): CertificateAuthority {
  return {
    clusterId: ca.clusterId,
    trustDomain: ca.trustDomain,
    roots: () => ca.roots(),
    leaf: (identity) => ca.leaf({ spiffeId: identity.spiffeId, dnsSans: identity.dnsSans }),
    release: () => undefined,
    rotate: () => ca.rotate(),
    subscribe: (listener) => ca.subscribe(listener),
    close: () => ca.close(),
  };
}

/** 2. A SnapshotManager building and publishing N registered sidecars from scratch. */
async function startRun(
  n: number,
  services: number,
  maxIssuing: number,
  leaves: 'instance' | 'identity',
): Promise<Run> {
  const { ca, done } = await freshCa(maxIssuing);
  const data = new FakeCatalog('dc1');
  const perService = Math.ceil(n / services);
  for (let i = 0; i < n; i++)
    registerInstance(data, i % services, Math.floor(i / services), perService);
  const catalog = new IndexedCatalog(data);
  const issued = new Set<string>();
  const manager = new SnapshotManager({
    catalog,
    ca: leaves === 'instance' ? ca : perIdentity(ca),
    sink: new SnapshotPublisher(new XdsCache(new Metrics())),
    leafUsers: new LeafUsers(),
    datacenter: 'dc1',
    logger: silentLogger(),
    metrics: new Metrics(),
  });
  try {
    const run = await measure(async () => {
      manager.start();
      await manager.settled();
      // Every proxy's leaf is cached by now: this only counts the distinct ones.
      for (const i of catalog.instancesOfKind('connect-proxy')) {
        const spiffeId = serviceSpiffeId(ca.trustDomain, 'dc1', {
          name: i.proxy!.destinationServiceName,
        });
        const leaf = await ca.leaf(
          leaves === 'instance' ? { spiffeId, holder: i.id } : { spiffeId },
        );
        issued.add(leaf.serial);
      }
      return issued.size;
    });
    const label = leaves === 'instance' ? 'start, leaf per instance' : 'start, leaf per service';
    return { label, n, ...run, ...(await perHolder(run, n)) };
  } finally {
    await manager.stop();
    await done();
  }
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

function printRun(r: Run): void {
  const rate = (r.leaves / r.ms) * 1000;
  console.log(
    [
      r.label.padEnd(26),
      String(r.n).padStart(6),
      String(r.leaves).padStart(6),
      `${(r.ms / 1000).toFixed(2)} s`.padStart(9),
      `${rate.toFixed(0)}/s`.padStart(8),
      `${(r.cpuMs / r.leaves).toFixed(2)} ms`.padStart(10),
      `${ms(r.lag.p50)} / ${ms(r.lag.p99)} / ${ms(r.lag.max)} ms`.padStart(22),
      kb(r.heapPer).padStart(9),
      kb(r.externalPer).padStart(9),
    ].join('  '),
  );
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  console.log(
    `leaf issuance (issue 18): proxies ${opts.proxies.join(', ')}; ${opts.services} services; ` +
      `issuing at once ${opts.maxIssuing.join(', ')}; forced GC ${hasGc ? 'yes' : 'NO (heap figures are noise)'}`,
  );
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(1))
      .join(' ');
  console.log(
    `load average at the start: ${load()} (the machine is shared; read figures next to it)`,
  );
  console.log(
    [
      'run'.padEnd(26),
      'N'.padStart(6),
      'leaves'.padStart(6),
      'all in'.padStart(9),
      'rate'.padStart(8),
      'CPU/leaf'.padStart(10),
      'loop lag p50/p99/max'.padStart(22),
      'heap/N'.padStart(9),
      'ext/N'.padStart(9),
    ].join('  '),
  );
  for (const n of opts.proxies) {
    if (opts.only !== 'start')
      for (const m of opts.maxIssuing) printRun(await caRun(n, opts.services, m));
    if (opts.only !== 'ca') {
      const m = opts.maxIssuing[0]!;
      printRun(await startRun(n, opts.services, m, 'identity'));
      printRun(await startRun(n, opts.services, m, 'instance'));
    }
  }
  console.log(`load average at the end: ${load()}`);
  console.log(
    'leaves: distinct leaves issued; rate: leaves / all in; CPU: process CPU (all threads) per leaf;',
  );
  console.log(
    'heap/N, ext/N: heap and external memory added per leaf (CA) or per proxy (start: leaf + view).',
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
