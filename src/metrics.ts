import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The one metrics registry and every metric isthmus exports. Labels never carry per-proxy or
 * per-stream values: cardinality stays bounded at thousands of proxies.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly buildInfo = new Gauge({
    name: 'isthmus_build_info',
    help: 'Build information; the value is always 1.',
    labelNames: ['version', 'node_version'] as const,
    registers: [this.registry],
  });

  readonly xdsStreams = new Gauge({
    name: 'isthmus_xds_streams',
    help: 'Open xDS streams by API (sotw, delta, csds).',
    labelNames: ['api'] as const,
    registers: [this.registry],
  });

  readonly xdsPushes = new Counter({
    name: 'isthmus_xds_pushes_total',
    help: 'xDS responses sent, by resource type.',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  readonly xdsRejects = new Counter({
    name: 'isthmus_xds_rejects_total',
    help: 'xDS responses rejected (NACKed) by clients, by resource type.',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  readonly xdsPushDuration = new Histogram({
    name: 'isthmus_xds_push_duration_seconds',
    help: 'Time to assemble and write one xDS response from the cache.',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [this.registry],
  });

  readonly xdsConvergence = new Histogram({
    name: 'isthmus_xds_convergence_seconds',
    help: 'Time from publishing a proxy view to the client acknowledging it.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly xdsEncodes = new Counter({
    name: 'isthmus_xds_resource_encodes_total',
    help: 'Resources encoded into the shared cache (one per distinct content), by resource type.',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  readonly xdsStreamsRefused = new Counter({
    name: 'isthmus_xds_streams_refused_total',
    help: 'xDS streams refused, by reason (limit, invalid, unauthenticated).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly snapshotBuilds = new Counter({
    name: 'isthmus_snapshot_builds_total',
    help: 'Proxy config snapshots built and published, by proxy kind and result (ok, error).',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  });

  readonly snapshotBuildDuration = new Histogram({
    name: 'isthmus_snapshot_build_duration_seconds',
    help: 'Time to build one proxy snapshot and generate its resources.',
    labelNames: ['kind'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean; version?: string } = {}) {
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.buildInfo.set({ version: opts.version ?? '0.0.0', node_version: process.version }, 1);
  }
}
