import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LeanCounter, LeanHistogram } from './lean-metrics.js';

/**
 * The one metrics registry and every metric isthmus exports. Labels never carry per-proxy or
 * per-stream values: cardinality stays bounded at thousands of proxies.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly buildInfo = new Gauge({
    name: 'isthmus_build_info',
    help: 'Build information (isthmus and Node.js versions as labels); the value is always 1.',
    labelNames: ['version', 'node_version'] as const,
    registers: [this.registry],
  });

  readonly xdsStreams = new Gauge({
    name: 'isthmus_xds_streams',
    help: 'Open ADS streams by API (sotw, delta).',
    labelNames: ['api'] as const,
    registers: [this.registry],
  });

  readonly xdsPushes = new LeanCounter({
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

  readonly xdsPushDuration = new LeanHistogram({
    name: 'isthmus_xds_push_duration_seconds',
    help: 'Seconds to assemble and write one xDS response from the cache.',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [this.registry],
  });

  readonly xdsConvergence = new LeanHistogram({
    name: 'isthmus_xds_convergence_seconds',
    help: 'Seconds from publishing a proxy view to the client acknowledging it.',
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
    help: 'xDS streams refused or closed before admission, by reason (limit, invalid, unauthenticated, timeout).',
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
    help: 'Seconds to build one proxy snapshot and generate its resources.',
    labelNames: ['kind'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [this.registry],
  });

  /**
   * One row per peering, read at scrape time by the isthmus_peering_* gauges (set by the server).
   */
  peeringRows: () => readonly PeeringMetricRow[] = () => [];

  readonly peeringHealthy = this.peeringGauge(
    'isthmus_peering_healthy',
    'Whether the peering is ACTIVE with a fresh heartbeat (1) or not (0).',
    (r) => (r.healthy ? 1 : 0),
  );

  readonly peeringExportedServices = this.peeringGauge(
    'isthmus_peering_exported_services',
    'Services exported to the peer.',
    (r) => r.exportedServices,
  );

  readonly peeringImportedServices = this.peeringGauge(
    'isthmus_peering_imported_services',
    'Services imported from the peer.',
    (r) => r.importedServices,
  );

  readonly peeringHeartbeatAge = this.peeringGauge(
    'isthmus_peering_last_heartbeat_age_seconds',
    'Seconds since the last heartbeat from the peer (absent until one arrives).',
    (r) => r.lastHeartbeatAgeSeconds,
  );

  readonly peeringMessagesSent = new Counter({
    name: 'isthmus_peering_replication_messages_sent_total',
    help: 'Replication responses written to the peer (each chunk of a chunked resource counts).',
    labelNames: ['peer_name'] as const,
    registers: [this.registry],
  });

  readonly peeringBytesSent = new Counter({
    name: 'isthmus_peering_replication_sent_bytes_total',
    help: 'Encoded bytes of the replication responses written to the peer.',
    labelNames: ['peer_name'] as const,
    registers: [this.registry],
  });

  readonly peeringLargestMessage = new Gauge({
    name: 'isthmus_peering_replication_largest_message_bytes',
    help: 'The largest replication response written to the peer since start (at most 1 MiB).',
    labelNames: ['peer_name'] as const,
    registers: [this.registry],
  });

  /** Whether this server leads its cluster now, read at scrape time (set by the server). */
  isLeader: () => boolean = () => false;

  readonly clusterLeader = this.leaderGauge();

  readonly leadershipChanges = new Counter({
    name: 'isthmus_leadership_changes_total',
    help: "Times this server became its cluster's leader (acquired) or stopped being it (lost).",
    labelNames: ['change'] as const,
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean; version?: string } = {}) {
    if (opts.defaultMetrics) {
      collectDefaultMetrics({ register: this.registry });
      // prom-client's `nodejs_active_{handles,requests,resources}_total` are gauges named like
      // counters, which Prometheus' naming rules forbid (`promtool check metrics`). Each is the sum
      // of the per-type gauge of the same name without the suffix, so nothing is lost.
      for (const name of nonCounterTotals) this.registry.removeSingleMetric(name);
    }
    this.buildInfo.set({ version: opts.version ?? '0.0.0', node_version: process.version }, 1);
  }

  /** isthmus_cluster_leader, read from `isLeader` at every scrape. */
  private leaderGauge(): Gauge {
    const isLeader = () => this.isLeader();
    return new Gauge({
      name: 'isthmus_cluster_leader',
      help: "Whether this server is its cluster's leader (1) or not (0); with --store lmdb it always is.",
      registers: [this.registry],
      collect() {
        this.set(isLeader() ? 1 : 0);
      },
    });
  }

  /** A gauge labelled by `peer_name` only, recomputed from `peeringRows` at every scrape. */
  private peeringGauge(
    name: string,
    help: string,
    value: (row: PeeringMetricRow) => number | undefined,
  ): Gauge<'peer_name'> {
    const rows = () => this.peeringRows();
    return new Gauge({
      name,
      help,
      labelNames: ['peer_name'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const row of rows()) {
          const v = value(row);
          if (v !== undefined) this.set({ peer_name: row.peerName }, v);
        }
      },
    });
  }
}

const nonCounterTotals = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

export interface PeeringMetricRow {
  readonly peerName: string;
  readonly healthy: boolean;
  readonly exportedServices: number;
  readonly importedServices: number;
  readonly lastHeartbeatAgeSeconds: number | undefined;
}
