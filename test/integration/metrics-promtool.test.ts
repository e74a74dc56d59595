/**
 * Metrics follow Prometheus' naming rules (issue 6): `/metrics` of two peered servers, with an
 * export and a connected proxy so the xDS and peering series have samples, passes
 * `promtool check metrics` without a complaint, and every isthmus_* family has HELP and TYPE.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/xds/types.js';
import type { EnvoyLike } from '../helpers/envoy-like.js';
import { exportEntry, startPeeredMeshes, type PeeredMeshes } from '../helpers/peered-mesh.js';
import { skipWithout } from '../helpers/tools.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

interface Check {
  readonly code: number | null;
  readonly output: string;
}

/** `promtool check metrics` reading the exposition on stdin; its complaints go to stdout/stderr. */
async function promtoolCheck(text: string): Promise<Check> {
  const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
  const closed = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  });
  child.stdin.end(text);
  const code = await withDeadline(closed, {
    timeoutMs: 10_000,
    what: 'promtool check metrics to exit',
  });
  return { code, output: output.trim() };
}

interface Family {
  help?: string;
  type?: string;
  samples: number;
}

/**
 * Metric families of a text exposition, samples attributed to their family (histogram suffixes
 * too).
 */
function families(text: string): Map<string, Family> {
  const byName = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = byName.get(name);
    if (!f) byName.set(name, (f = { samples: 0 }));
    return f;
  };
  for (const line of text.split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'HELP') family(meta[2]!).help = meta[3]!;
      else family(meta[2]!).type = meta[3]!;
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (!sample) continue;
    const name = sample[1]!;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    family(byName.get(base)?.type === 'histogram' ? base : name).samples++;
  }
  return byName;
}

let meshes: PeeredMeshes;
let envoy: EnvoyLike;

const metricsOf = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

describe.skipIf(skipWithout('promtool'))('metrics naming (promtool check metrics)', () => {
  beforeAll(async () => {
    meshes = await startPeeredMeshes();
    const { a, b } = meshes;
    await a.register({
      ID: 'api',
      Name: 'api',
      Address: '127.0.0.1',
      Port: 9090,
      Check: { TTL: '600s', Status: 'passing' },
      Connect: { SidecarService: {} },
    });
    await a.putConfig(exportEntry({ api: ['cluster-b'] }));
    envoy = await a.connect('api-sidecar-proxy');
    await envoy.until(
      (e) => e.names(TypeUrl.listener).some((n) => n.startsWith('public_listener:')),
      "api's public listener",
    );
    // isthmus_xds_convergence_seconds times a view published to a stream already subscribed (the
    // first sync of a new stream is not a convergence): an intention changes api's public
    // listener once the proxy holds it, so the metric has a sample, however quickly the first
    // view was built.
    const listener = envoy.names(TypeUrl.listener).find((n) => n.startsWith('public_listener:'))!;
    const before = envoy.json(TypeUrl.listener, listener);
    await a.putConfig({
      Kind: 'service-intentions',
      Name: 'api',
      Sources: [{ Name: 'web', Action: 'deny' }],
    });
    await envoy.until((e) => e.json(TypeUrl.listener, listener) !== before, 'the intention in LDS');
    await waitFor(
      async () =>
        /^isthmus_xds_convergence_seconds_count [1-9]/m.test(await metricsOf(a.server.httpPort)),
      { timeoutMs: 10_000, what: "A's first convergence sample (the intention's push ACKed)" },
    );
    await waitFor(
      async () =>
        /^isthmus_peering_imported_services\{peer_name="cluster-a"\} 1$/m.test(
          await metricsOf(b.server.httpPort),
        ),
      {
        timeoutMs: 10_000,
        what: 'B to import api from cluster-a',
      },
    );
  }, 30_000);

  afterAll(async () => {
    await meshes?.close();
  });

  it('/metrics of both peered servers passes promtool with no complaint', async () => {
    for (const [name, node] of [
      ['A', meshes.a],
      ['B', meshes.b],
    ] as const) {
      const text = await metricsOf(node.server.httpPort);
      expect(text, `${name} serves the peering and xDS series`).toMatch(
        /^isthmus_peering_healthy\{peer_name="cluster-[ab]"\} 1$/m,
      );
      const check = await promtoolCheck(text);
      expect({ server: name, ...check }).toEqual({ server: name, code: 0, output: '' });
    }
    const textA = await metricsOf(meshes.a.server.httpPort);
    expect(textA).toMatch(/^isthmus_xds_streams\{api="delta"\} 1$/m);
    expect(textA).toMatch(/^isthmus_peering_exported_services\{peer_name="cluster-b"\} 1$/m);
    expect(textA).toMatch(/^isthmus_xds_pushes_total\{type="(CDS|LDS|EDS|SDS)"\} [1-9]/m);
    expect(textA).toMatch(/^isthmus_xds_convergence_seconds_count [1-9]/m);
    // One server on LMDB leads its cluster from the start, once.
    expect(textA).toMatch(/^isthmus_cluster_leader 1$/m);
    expect(textA).toMatch(/^isthmus_leadership_changes_total\{change="acquired"\} 1$/m);
    expect(textA).not.toMatch(/^isthmus_leadership_changes_total\{change="lost"\}/m);
    // prom-client's gauges named like counters are gone; the per-type gauges carry the same
    // numbers.
    expect(textA).not.toMatch(/^nodejs_active_\w+_total/m);
    expect(textA).toMatch(/^# TYPE nodejs_active_handles gauge$/m);
  });

  it('promtool does flag a gauge named like a counter (the check is live)', async () => {
    const bad =
      '# HELP isthmus_things_total Things.\n# TYPE isthmus_things_total gauge\nisthmus_things_total 1\n';
    const check = await promtoolCheck(bad);
    expect(check.output).toContain('non-counter metrics should not have "_total" suffix');
  });

  it('every isthmus_* family has HELP text and a TYPE; counters alone end in _total', async () => {
    const text = await metricsOf(meshes.a.server.httpPort);
    const ours = [...families(text)].filter(([name]) => name.startsWith('isthmus_'));
    expect(ours.map(([name]) => name)).toEqual(
      expect.arrayContaining([
        'isthmus_build_info',
        'isthmus_xds_streams',
        'isthmus_xds_pushes_total',
        'isthmus_xds_rejects_total',
        'isthmus_xds_push_duration_seconds',
        'isthmus_xds_convergence_seconds',
        'isthmus_peering_healthy',
        'isthmus_peering_exported_services',
        'isthmus_peering_imported_services',
        'isthmus_peering_last_heartbeat_age_seconds',
      ]),
    );
    for (const [name, f] of ours) {
      expect(f.help, `${name} HELP`).toMatch(/\S{3}/);
      expect(f.type, `${name} TYPE`).toMatch(/^(counter|gauge|histogram|summary)$/);
      expect(name.endsWith('_total'), `${name} is a ${f.type}`).toBe(f.type === 'counter');
    }
  });
});
