/**
 * A real Prometheus (Debian package) scrapes two peered `isthmus server` processes (issue 6): the
 * targets are up, and the peering, xDS and build series are queryable with the values a user
 * expects while A exports a service to B and a proxy is connected to A.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../src/xds/types.js';
import { startMeshProcess, type MeshProcess } from '../helpers/mesh-server.js';
import { exportEntry, startPeeredMeshes, type PeeredMeshes } from '../helpers/peered-mesh.js';
import { cleanupProcesses, freePort, tempDir } from '../helpers/process.js';
import { skipWithout } from '../helpers/tools.js';
import { waitFor, withDeadline } from '../helpers/wait.js';

interface Sample {
  readonly metric: Record<string, string>;
  readonly value: readonly [number, string];
}

let meshes: PeeredMeshes<MeshProcess>;
let prometheus: ChildProcess | undefined;
let prometheusLog = '';
let promUrl = '';

/** Starts Prometheus scraping the targets every second; resolves once `/-/ready` answers 200. */
async function startPrometheus(targets: readonly string[]): Promise<void> {
  const dir = tempDir('isthmus-prometheus-');
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: isthmus',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prometheus.stdout!.setEncoding('utf8').on('data', (c: string) => (prometheusLog += c));
  prometheus.stderr!.setEncoding('utf8').on('data', (c: string) => (prometheusLog += c));
  const exited = new Promise<never>((_resolve, reject) =>
    prometheus!.once('exit', (code) =>
      reject(new Error(`prometheus exited (${code}): ${prometheusLog}`)),
    ),
  );
  const ready = waitFor(async () => (await fetch(`${promUrl}/-/ready`)).status === 200, {
    timeoutMs: 15_000,
    intervalMs: 100,
    what: `Prometheus ready (${prometheusLog})`,
  });
  await Promise.race([ready, exited]);
}

/** An instant query's samples. */
async function query(promql: string): Promise<Sample[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as {
    status: string;
    data?: { resultType: string; result: Sample[] };
    error?: string;
  };
  if (body.status !== 'success') throw new Error(`${promql}: ${body.error}`);
  return body.data!.result;
}

/** Waits until the query returns samples whose values satisfy `ok` (each), and returns them. */
async function until(
  promql: string,
  ok: (samples: Sample[]) => boolean,
  timeoutMs = 15_000,
): Promise<Sample[]> {
  let last: Sample[] = [];
  return waitFor(
    async () => {
      last = await query(promql);
      return last.length > 0 && ok(last) ? last : undefined;
    },
    {
      timeoutMs,
      intervalMs: 250,
      what: `${promql} (last: ${JSON.stringify(last.map((s) => [s.metric, s.value[1]]))})`,
    },
  );
}

const num = (s: Sample) => Number(s.value[1]);

describe.skipIf(skipWithout('prometheus'))('Prometheus scrapes two peered isthmus servers', () => {
  beforeAll(async () => {
    meshes = await startPeeredMeshes({}, {}, startMeshProcess);
    const { a } = meshes;
    await a.register({
      ID: 'api',
      Name: 'api',
      Address: '127.0.0.1',
      Port: 9090,
      Check: { TTL: '600s', Status: 'passing' },
      Connect: { SidecarService: {} },
    });
    await a.putConfig(exportEntry({ api: ['cluster-b'] }));
    const envoy = await a.connect('api-sidecar-proxy');
    await envoy.until(
      (e) => e.names(TypeUrl.listener).some((n) => n.startsWith('public_listener:')),
      "api's public listener",
    );
    await startPrometheus([meshes.a.httpAddress, meshes.b.httpAddress]);
  }, 30_000);

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null && prometheus.signalCode === null) {
      const gone = new Promise<void>((resolve) => prometheus!.once('exit', () => resolve()));
      prometheus.kill('SIGKILL');
      await withDeadline(gone, { timeoutMs: 5_000, what: 'prometheus to exit' });
    }
    await meshes?.close();
    await cleanupProcesses();
  });

  it('both targets are up and report the peering, xDS and build series', async () => {
    const a = meshes.a.httpAddress;
    const b = meshes.b.httpAddress;
    const up = await until(
      'up{job="isthmus"}',
      (s) => s.length === 2 && s.every((x) => num(x) === 1),
    );
    expect(up.map((s) => s.metric.instance).sort()).toEqual([a, b].sort());

    const healthy = await until('isthmus_peering_healthy', (s) => s.length === 2);
    expect(healthy.map((s) => [s.metric.instance, s.metric.peer_name, num(s)]).sort()).toEqual(
      [
        [a, 'cluster-b', 1],
        [b, 'cluster-a', 1],
      ].sort(),
    );

    const exported = await until(`isthmus_peering_exported_services{instance="${a}"}`, (s) =>
      s.every((x) => num(x) === 1),
    );
    expect(exported.map((s) => s.metric.peer_name)).toEqual(['cluster-b']);
    const imported = await until(`isthmus_peering_imported_services{instance="${b}"}`, (s) =>
      s.every((x) => num(x) === 1),
    );
    expect(imported.map((s) => s.metric.peer_name)).toEqual(['cluster-a']);
    await until(
      `isthmus_peering_last_heartbeat_age_seconds{instance="${b}",peer_name="cluster-a"} < 60`,
      (s) => s.length === 1,
    );

    const streams = await until(`isthmus_xds_streams{api="delta"}`, (s) =>
      s.some((x) => num(x) >= 1),
    );
    expect(streams.filter((s) => num(s) >= 1).map((s) => s.metric.instance)).toEqual([a]);
    await until(
      `sum by (instance) (isthmus_xds_pushes_total{instance="${a}"})`,
      (s) => num(s[0]!) >= 1,
    );

    const build = await until('isthmus_build_info', (s) => s.length === 2);
    for (const s of build) {
      expect(num(s)).toBe(1);
      expect(s.metric.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(s.metric.node_version).toMatch(/^v\d+\./);
    }
  }, 30_000);
});
