/**
 * Peering at scale (bench/README.md, issue 14): two real `isthmus server` processes, A exporting
 * `--services` services × `--instances` instances (each with one sidecar, so it is a mesh service)
 * plus one `--big`-instance service to B. It prints the time from the exported-services entry
 * until B holds every service and until B's mesh gateway (a Delta fake Envoy) holds a cluster with
 * endpoints for each, the largest replication message and the bytes A sent, what a change to one
 * instance costs on the wire, and both processes' RSS. Exits 0 whatever the figures, 1 if something
 * breaks (a deadline, a process exit).
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { CatalogIndex } from '../../src/catalog/catalog-index.js';
import { planRegistration } from '../../src/catalog/instance-changes.js';
import { storedInstances } from '../../src/catalog/records.js';
import { parseRegistration } from '../../src/catalog/registration.js';
import { openLmdbStore } from '../../src/store/index.js';
import {
  cleanupProcesses,
  cliCommand,
  type ServerProcessOptions,
  tempDir,
} from '../../test/helpers/process.js';
import { type MeshProcess, startMeshProcess } from '../../test/helpers/mesh-server.js';
import { exportEntry, peerClusters } from '../../test/helpers/peered-mesh.js';
import { waitFor } from '../../test/helpers/wait.js';
import { TypeUrl } from '../../src/xds/types.js';
import { maxMessageBytes } from '../../src/peering/stream/messages.js';

interface Options {
  readonly services: number;
  readonly instances: number;
  readonly big: number;
  /** Runs both servers under `node --cpu-prof`, their profiles left in this directory. */
  readonly profile: string | undefined;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      services: { type: 'string', default: '5000' },
      instances: { type: 'string', default: '20' },
      big: { type: 'string', default: '20000' },
      profile: { type: 'string' },
    },
  });
  const int = (name: keyof typeof values, min: number, max: number) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${values[name]}"`);
    return n;
  };
  return {
    services: int('services', 1, 5_000),
    instances: int('instances', 1, 1_000),
    big: int('big', 0, 50_000),
    profile: values.profile,
  };
}

const gateway = (id: string, wan: string) => ({
  ID: id,
  Name: 'mesh-gateway',
  Kind: 'mesh-gateway',
  Address: '127.0.0.1',
  Port: 8443,
  TaggedAddresses: {
    lan: { Address: '127.0.0.1', Port: 8443 },
    wan: { Address: wan, Port: 443 },
  },
});

/** Instance `i` of `service`: the first one carries a sidecar (a mesh service). */
function instance(service: string, i: number, address = `10.${(i >> 8) & 255}.${i & 255}.7`) {
  return {
    ID: `${service}-${i}`,
    Name: service,
    Address: address,
    Port: 8080,
    Meta: { version: 'v1' },
    ...(i === 0 ? { Connect: { SidecarService: { Port: 21000 } } } : {}),
  };
}

/**
 * A's data dir with every instance registered the way the Catalog plans a registration, all in
 * one Store transaction: registering 100,000 instances one commit at a time (over HTTP or not)
 * takes far longer than what is measured here (issue 14's registration figures, not this one's).
 */
async function seedCatalog(bodies: Iterable<unknown>): Promise<string> {
  const dir = tempDir('isthmus-peering-scale-');
  const store = await openLmdbStore(dir);
  const index = new CatalogIndex();
  const now = Date.now();
  await store.txn(async (tx) => {
    for (const body of bodies) {
      const parsed = parseRegistration(body, { datacenter: 'dc-a' });
      if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
      const plan = planRegistration(parsed.value, { index, now, revision: 1 });
      if (!plan.ok) throw new Error(JSON.stringify(plan.error));
      for (const stored of plan.value.upserts) {
        storedInstances.put(tx, stored.instance.id, stored);
        index.put(stored);
      }
    }
  });
  await store.close();
  return dir;
}

function* serviceBodies(opts: Options) {
  for (let s = 0; s < opts.services; s++)
    for (let i = 0; i < opts.instances; i++) yield instance(`svc-${s}`, i);
  for (let i = 0; i < opts.big; i++) yield instance('big', i);
}

/** One series of A's replication metrics towards `cluster-b`. */
async function metric(node: MeshProcess, name: string): Promise<number> {
  const res = await fetch(`http://${node.httpAddress}/metrics`);
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{peer_name="cluster-b"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

const replication = async (a: MeshProcess) => ({
  messages: await metric(a, 'isthmus_peering_replication_messages_sent_total'),
  bytes: await metric(a, 'isthmus_peering_replication_sent_bytes_total'),
  largest: await metric(a, 'isthmus_peering_replication_largest_message_bytes'),
});

function rssMiB(node: MeshProcess): number {
  const status = readFileSync(`/proc/${node.proc.child.pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/** Snapshot builds of `kind` a server has published (its `isthmus_snapshot_builds_total`). */
async function builds(node: MeshProcess, kind: string): Promise<number> {
  const text = await (await fetch(`http://${node.httpAddress}/metrics`)).text();
  const pattern = new RegExp(
    `^isthmus_snapshot_builds_total\\{kind="${kind}",result="ok"\\} (\\d+)$`,
    'm',
  );
  return Number(pattern.exec(text)?.[1] ?? 0);
}

/** The machine's load average (1, 5, 15 min): the figures follow it on a shared machine. */
const load = () =>
  loadavg()
    .map((n) => n.toFixed(1))
    .join(' ');

/** Services B imported from A, as its peering reports them. */
async function importedCount(b: MeshProcess): Promise<number> {
  const res = await b.api<{ StreamStatus?: { ImportedServices?: string[] } }>(
    'GET',
    '/v1/peering/cluster-a',
  );
  return res.body?.StreamStatus?.ImportedServices?.length ?? 0;
}

async function peeredInstances(b: MeshProcess, service: string) {
  const res = await b.api<{ Service: { ID: string; Address: string } }[]>(
    'GET',
    `/v1/health/service/${service}?peer=cluster-a`,
  );
  return (res.body ?? []).map((e) => e.Service);
}

/**
 * Moves instance 3 of `service` on A and waits (polling B's API every `pollMs`) until B shows it:
 * the replication messages and bytes that took, and the time.
 */
async function moveOne(a: MeshProcess, b: MeshProcess, service: string, pollMs: number) {
  const before = await replication(a);
  const began = performance.now();
  await a.register(instance(service, 3, '10.255.255.254'));
  await waitFor(
    async () =>
      (await peeredInstances(b, service)).some(
        (i) => i.ID === `${service}-3` && i.Address === '10.255.255.254',
      ),
    { timeoutMs: 120_000, intervalMs: pollMs, what: `the moved ${service} instance on B` },
  );
  const ms = performance.now() - began;
  const after = await replication(a);
  return { messages: after.messages - before.messages, bytes: after.bytes - before.bytes, ms };
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const wantServices = opts.services + (opts.big > 0 ? 1 : 0);
  const flags = { xdsAuth: 'off' };
  const total = opts.services * opts.instances + opts.big;
  console.log(
    `A: ${opts.services} services x ${opts.instances} instances + big (${opts.big}) = ${total} instances; load average ${load()}`,
  );
  let began = performance.now();
  const [node, ...rest] = cliCommand;
  const profiled = opts.profile
    ? { command: [node!, '--cpu-prof', `--cpu-prof-dir=${opts.profile}`, ...rest] }
    : {};
  const seeded: ServerProcessOptions = {
    dataDir: await seedCatalog(serviceBodies(opts)),
    timeoutMs: 120_000,
    ...profiled,
  };
  console.log(`A's catalog seeded in ${((performance.now() - began) / 1000).toFixed(1)} s`);
  const [a, b] = await Promise.all([
    startMeshProcess({ datacenter: 'dc-a', ...flags }, seeded),
    startMeshProcess({ datacenter: 'dc-b', ...flags }, profiled),
  ]);
  try {
    await peerClusters(a, b, { dialerName: 'cluster-b', acceptorName: 'cluster-a' }, 30_000);
    await a.register(gateway('gw-a', '203.0.113.7'));
    await b.register(gateway('gw-b', '198.51.100.9'));
    const gwB = await b.connect('gw-b');

    const rssBefore = { a: rssMiB(a), b: rssMiB(b) };
    const sentBefore = await replication(a);
    const gatewayBuildsBefore = await builds(b, 'mesh-gateway');
    const loadAtEntry = load();

    began = performance.now();
    await a.putConfig(exportEntry({ '*': ['cluster-b'] }));
    console.log('exported-services entry written on A');
    await waitFor(async () => (await importedCount(b)) === wantServices, {
      timeoutMs: 600_000,
      intervalMs: 100,
      what: `B to import ${wantServices} services`,
    });
    const importedMs = performance.now() - began;
    const peeredClusters = () =>
      gwB
        .names(TypeUrl.cluster)
        .filter((n) => n.includes('.external.') && gwB.get(TypeUrl.endpoint, n));
    await gwB.until(() => peeredClusters().length === wantServices, "B's gateway", 600_000);
    const proxyMs = performance.now() - began;
    const sent = await replication(a);
    const gatewayBuilds = (await builds(b, 'mesh-gateway')) - gatewayBuildsBefore;
    const loadAtImported = load();

    const sample = [`svc-${opts.services - 1}`, 'svc-0', ...(opts.big > 0 ? ['big'] : [])];
    for (const name of sample) {
      const held = (await peeredInstances(b, name)).length;
      const want = name === 'big' ? opts.big : opts.instances;
      if (held !== want) throw new Error(`B holds ${held} instances of ${name}, want ${want}`);
    }

    // One instance moves: what crosses the wire, and how long until B's catalog shows it.
    const small = await moveOne(a, b, 'svc-0', 20);
    const big = opts.big > 0 ? await moveOne(a, b, 'big', 500) : undefined;
    const rssAfter = { a: rssMiB(a), b: rssMiB(b) };

    const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
    const rows: [string, string][] = [
      ['exported services', `${wantServices} (${total} instances + synthetic sidecars)`],
      ['entry → B holds every service', `${(importedMs / 1000).toFixed(1)} s`],
      ["entry → B's gateway has every peered cluster + EDS", `${(proxyMs / 1000).toFixed(1)} s`],
      ["B's gateway snapshots built meanwhile", String(gatewayBuilds)],
      ['load average at the entry → when B held everything', `${loadAtEntry} → ${loadAtImported}`],
      [
        'replication messages A→B (initial)',
        `${sent.messages - sentBefore.messages}, ${mib(sent.bytes - sentBefore.bytes)}`,
      ],
      ['largest message', `${sent.largest} bytes (limit ${maxMessageBytes})`],
      [
        'one instance of svc-0 moved: messages, bytes, → on B',
        `${small.messages}, ${small.bytes} bytes, ${small.ms.toFixed(0)} ms`,
      ],
      ...(big
        ? ([
            [
              `one instance of big (${opts.big}) moved: messages, bytes`,
              `${big.messages}, ${big.bytes} bytes`,
            ],
          ] as [string, string][])
        : []),
      ['RSS A before → after export', `${rssBefore.a} → ${rssAfter.a} MiB`],
      ['RSS B before → after import', `${rssBefore.b} → ${rssAfter.b} MiB`],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
    gwB.close();
  } finally {
    await Promise.all([a.close(), b.close()]);
    await cleanupProcesses();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
