/**
 * What a running Envoy holds, read from its admin interface for the tour: an upstream cluster's
 * TLS checks (`/config_dump`, snake_case proto JSON) and every cluster's hosts (`/clusters`).
 * The demo reports Envoy's own view, not what isthmus meant to send.
 */
import type { DemoEnvoy } from './envoy-process.js';

// biome-ignore lint/suspicious/noExplicitAny: Envoy admin JSON, walked as Envoy documents it
type Json = any;

export interface EnvoyHost {
  readonly address: string;
  readonly healthy: boolean;
}

export interface HeldUpstream {
  readonly cluster: string;
  readonly sni: string;
  readonly sanMatchers: readonly string[];
  readonly hosts: readonly EnvoyHost[];
}

/** `/clusters?format=json`: cluster name → its hosts. */
export async function clusterHosts(envoy: DemoEnvoy): Promise<Map<string, EnvoyHost[]>> {
  const parsed: Json = JSON.parse(await envoy.admin('/clusters?format=json'));
  const out = new Map<string, EnvoyHost[]>();
  for (const c of parsed.cluster_statuses ?? []) {
    const hosts = (c.host_statuses ?? []).map((h: Json): EnvoyHost => {
      const sa = h.address?.socket_address;
      const eds = h.health_status?.eds_health_status ?? 'HEALTHY';
      return {
        address: sa ? `${sa.address}:${sa.port_value}` : '?',
        healthy: eds === 'HEALTHY' && !h.health_status?.failed_outlier_check,
      };
    });
    out.set(String(c.name), hosts);
  }
  return out;
}

/**
 * The active dynamic cluster `name` as Envoy holds it, with its hosts; undefined until it has one.
 */
export async function heldUpstream(
  envoy: DemoEnvoy,
  name: string,
): Promise<HeldUpstream | undefined> {
  const dump: Json = JSON.parse(await envoy.admin('/config_dump?resource=dynamic_active_clusters'));
  const cluster = (dump.configs ?? [])
    .map((c: Json) => c.cluster)
    .find((c: Json) => c?.name === name);
  if (!cluster) return undefined;
  const hosts = (await clusterHosts(envoy)).get(name) ?? [];
  if (hosts.length === 0) return undefined;
  const tls = cluster.transport_socket?.typed_config ?? {};
  const matchers: Json[] =
    tls.common_tls_context?.combined_validation_context?.default_validation_context
      ?.match_typed_subject_alt_names ?? [];
  return {
    cluster: name,
    sni: tls.sni ?? '',
    sanMatchers: matchers.map((m) => m.matcher?.exact ?? JSON.stringify(m.matcher)),
    hosts,
  };
}
