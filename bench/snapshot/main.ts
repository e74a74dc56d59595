/**
 * The snapshot benchmark (bench/README.md): how long one proxy's rebuild takes from catalog to
 * published view, for a sidecar with many upstreams and for a mesh gateway over a large
 * datacenter, and how many resources a one-endpoint change encodes. One process, no network.
 * Prints a report and exits 0 whatever the figures, 1 if something breaks.
 */
import { parseArgs } from 'node:util';
import type { CatalogReader } from '../../src/catalog/types.js';
import { exportedClusterName, serviceSni } from '../../src/mesh/names.js';
import { importedServiceKey } from '../../src/snapshot/pieces.js';
import type { FakeCatalog } from '../../test/helpers/fake-catalog.js';
import { hasGc, sampleMemory, type MemorySample } from '../ads-fanout/stats.js';
import {
  datacenter,
  gatewayCatalog,
  gatewayId,
  ImportsView,
  importedSni,
  importingGatewayCatalog,
  mustGet,
  peerName,
  protocolOf,
  sidecarCatalog,
  sidecarId,
  sidecarProxyId,
  trustDomain,
} from './catalogs.js';
import { IndexedCatalog } from './indexed-catalog.js';
import { type Path, ProxyPipeline, Server } from './pipeline.js';
import { cpuProfiler, type Profiler } from './profile.js';
import { printReport, type CaseReport } from './report.js';
import { runAdditions, runCold, runWarm, type LoopOptions } from './scenario.js';

interface Options extends LoopOptions {
  readonly upstreams: number;
  readonly upstreamInstances: number;
  readonly services: number;
  readonly instances: number;
  readonly catalog: 'indexed' | 'fake';
  readonly only: 'sidecar' | 'gateway' | 'imports' | 'all';
  readonly path: Path | 'both';
  readonly profile: string | undefined;
  /** Catalog sizes (services) of the curve; empty: one run at `--services`. */
  readonly curve: readonly number[];
}

function positive(name: string, value: string, limit: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > limit)
    throw new Error(`--${name} must be an integer from 1 to ${limit}, got "${value}"`);
  return n;
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value))
    throw new Error(`--${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  return value as T;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      iterations: { type: 'string', default: '50' },
      'cold-iterations': { type: 'string' },
      curve: { type: 'string' },
      warmup: { type: 'string', default: '10' },
      upstreams: { type: 'string', default: '100' },
      'upstream-instances': { type: 'string', default: '3' },
      services: { type: 'string', default: '1000' },
      instances: { type: 'string', default: '10' },
      catalog: { type: 'string', default: 'indexed' },
      only: { type: 'string', default: 'all' },
      path: { type: 'string', default: 'both' },
      profile: { type: 'string' },
    },
  });
  return {
    iterations: positive('iterations', values.iterations, 10_000),
    coldIterations: positive(
      'cold-iterations',
      values['cold-iterations'] ?? values.iterations,
      10_000,
    ),
    curve: (values.curve ?? '')
      .split(',')
      .filter((n) => n !== '')
      .map((n) => positive('curve', n, 20_000)),
    warmup: positive('warmup', values.warmup, 10_000),
    upstreams: positive('upstreams', values.upstreams, 5_000),
    upstreamInstances: positive('upstream-instances', values['upstream-instances'], 100),
    services: positive('services', values.services, 20_000),
    instances: positive('instances', values.instances, 100),
    catalog: oneOf('catalog', values.catalog, ['indexed', 'fake'] as const),
    only: oneOf('only', values.only, ['sidecar', 'gateway', 'imports', 'all'] as const),
    path: oneOf('path', values.path, ['incremental', 'full', 'both'] as const),
    profile: values.profile,
  };
}

const reader = (data: FakeCatalog, opts: Options): CatalogReader =>
  opts.catalog === 'indexed' ? new IndexedCatalog(data) : data;

/**
 * Moves instance (k mod instances) of service (k mod services) to a port no earlier iteration
 * used: a re-registration that changes exactly one endpoint. Returns the name of the cluster it
 * must change: the upstream's (a sidecar's), or the service's `exported~` one (a gateway's).
 */
function mover(data: FakeCatalog, services: number, instances: number, clusterOf: ClusterOf) {
  return (k: number) => {
    const i = k % services;
    const sidecar = mustGet(data, sidecarId(i, k % instances));
    data.upsert({ ...sidecar, port: 22_000 + k });
    const service = sidecar.proxy!.destinationServiceName;
    return { changes: [service], cluster: clusterOf(service) };
  };
}

type ClusterOf = (service: string) => string;
const upstreamCluster: ClusterOf = (name) => serviceSni(trustDomain, datacenter, { name });
const exportedCluster: ClusterOf = (name) => exportedClusterName(trustDomain, datacenter, { name });

/** In a curve, profiles are told apart by the catalog size. */
const sizeTag = (opts: Options) => (opts.curve.length > 0 ? `-${opts.services}` : '');

async function sidecarCase(opts: Options, profiler: Profiler, path: Path): Promise<CaseReport> {
  const n = opts.upstreams;
  const services = Math.max(n, opts.curve.length > 0 ? opts.services : n);
  const data = sidecarCatalog(n, opts.upstreamInstances, services);
  const pipeline = new ProxyPipeline(reader(data, opts), sidecarProxyId, path);
  const count = (p: string) =>
    Array.from({ length: n }, (_, i) => protocolOf(i)).filter((x) => x === p).length;
  return {
    title: `sidecar, ${path}`,
    units: n,
    services,
    topology:
      `${services} services; ${n} upstreams (${count('tcp')} tcp, ${count('http')} http, ${count('grpc')} grpc via service-defaults), ` +
      `${opts.upstreamInstances} healthy sidecar-fronted instances each, 11 intentions on the subject`,
    cold: await runCold(pipeline, opts, {
      profiler,
      label: `sidecar-${path}${sizeTag(opts)}-cold`,
    }),
    warm: await runWarm(
      pipeline,
      new Server(),
      mover(data, n, opts.upstreamInstances, upstreamCluster),
      opts,
      { profiler, label: `sidecar-${path}${sizeTag(opts)}-warm` },
    ),
  };
}

async function gatewayCase(opts: Options, profiler: Profiler, path: Path): Promise<CaseReport> {
  const heap: [string, MemorySample][] = [['before the catalog', await sampleMemory(3)]];
  const data = gatewayCatalog(opts.services, opts.instances);
  const pipeline = new ProxyPipeline(reader(data, opts), gatewayId, path);
  heap.push(['catalog registered', await sampleMemory(3)]);
  const cold = await runCold(pipeline, opts, {
    profiler,
    label: `gateway-${path}${sizeTag(opts)}-cold`,
  });
  const server = new Server();
  const move = mover(data, opts.services, opts.instances, exportedCluster);
  const warm = await runWarm(pipeline, server, move, opts, {
    profiler,
    label: `gateway-${path}${sizeTag(opts)}-warm`,
  });
  heap.push(['after the rebuilds, one view published', await sampleMemory(3)]);
  // Also keeps `server` (and the view it holds) alive until the sample above is taken.
  if (server.cache.entryCount === 0) throw new Error('the gateway view is not in the cache');
  return {
    title: `mesh gateway, ${path}`,
    units: opts.services,
    services: opts.services,
    topology:
      `${opts.services} services × ${opts.instances} instances, each instance with its sidecar ` +
      `(${2 * opts.services * opts.instances} catalog instances), all exported to one peer (TCP), plus a gateway of dc2`,
    cold,
    warm,
    heap,
  };
}

/**
 * A mesh gateway over `--services` × `--instances` services imported from one peer: a LAN chain
 * and a cluster per service. Each iteration moves one imported instance, as a replicated update
 * of that service does (the change keys are the SnapshotManager's for it).
 */
async function importsCase(opts: Options, profiler: Profiler, path: Path): Promise<CaseReport> {
  const imports = new ImportsView(opts.services, opts.instances);
  const pipeline = new ProxyPipeline(
    reader(importingGatewayCatalog(), opts),
    gatewayId,
    path,
    imports,
  );
  const cold = await runCold(pipeline, opts, {
    profiler,
    label: `imports-${path}${sizeTag(opts)}-cold`,
  });
  const move = (k: number) => {
    const service = imports.move(k % opts.services, k % opts.instances, 9_000 + k);
    return { changes: [importedServiceKey(peerName, service)], cluster: importedSni(service) };
  };
  const warm = await runWarm(pipeline, new Server(), move, opts, {
    profiler,
    label: `imports-${path}${sizeTag(opts)}-warm`,
  });
  // Services past the imported ones, added one per iteration.
  const add = (k: number) => [importedServiceKey(peerName, imports.add(opts.services + k))];
  const added = await runAdditions(pipeline, add, opts, {
    profiler,
    label: `imports-${path}${sizeTag(opts)}-add`,
  });
  return {
    title: `mesh gateway importing, ${path}`,
    units: opts.services,
    services: opts.services,
    topology: `${opts.services} services × ${opts.instances} instances imported from one peer (TCP), a LAN chain and a cluster each`,
    cold,
    warm,
    added,
  };
}

async function main(): Promise<void> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`bench:snapshot: ${(err as Error).message}`);
    process.exit(2);
  }
  const profiler = await cpuProfiler(opts.profile);
  const cases: CaseReport[] = [];
  const paths: Path[] = opts.path === 'both' ? ['incremental', 'full'] : [opts.path];
  const sizes = opts.curve.length > 0 ? opts.curve : [opts.services];
  for (const services of sizes) {
    const at = { ...opts, services };
    for (const path of paths) {
      const run = (c: Options['only']) => opts.only === 'all' || opts.only === c;
      if (run('sidecar')) cases.push(await sidecarCase(at, profiler, path));
      if (run('gateway')) cases.push(await gatewayCase(at, profiler, path));
      if (run('imports')) cases.push(await importsCase(at, profiler, path));
    }
  }
  printReport({ opts, gc: hasGc, cases, curve: opts.curve.length > 0 });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench:snapshot failed: ${(err as Error)?.stack ?? String(err)}`);
    process.exit(1);
  },
);
