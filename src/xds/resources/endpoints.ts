import { ClusterLoadAssignment } from '../../gen/envoy/config/endpoint/v3/endpoint.js';
import { HealthStatus } from '../../gen/envoy/config/core/v3/health_check.js';
import type { ConfigSnapshot, EdsClusterIR } from '../../snapshot/types.js';
import { TypeUrl } from '../types.js';
import { socketAddress, spec, type ResourceSpec } from './common.js';

/** EDS for a proxy: one ClusterLoadAssignment per EDS cluster. */
export function endpointsFromSnapshot(s: ConfigSnapshot): ResourceSpec[] {
  const clusters = s.kind === 'connect-proxy' ? s.upstreams.map((u) => u.cluster) : s.clusters;
  return clusters.map(loadAssignmentSpec);
}

function loadAssignmentSpec(c: EdsClusterIR): ResourceSpec {
  return spec(TypeUrl.endpoint, c.name, c.endpoints, () => buildLoadAssignment(c));
}

/** Critical instances never get here; warning ones are routed to as DEGRADED (Envoy's last choice). */
function buildLoadAssignment(c: EdsClusterIR): ClusterLoadAssignment {
  return ClusterLoadAssignment.fromPartial({
    clusterName: c.name,
    endpoints: [
      {
        // Proxyless gRPC clients need a locality with a weight (gRFC A27).
        locality: { region: '', zone: '', subZone: '' },
        loadBalancingWeight: 1,
        lbEndpoints: c.endpoints.map((e) => ({
          hostIdentifier: { $case: 'endpoint' as const, value: { address: socketAddress(e.address, e.port) } },
          healthStatus: e.health === 'healthy' ? HealthStatus.HEALTHY : HealthStatus.DEGRADED,
          loadBalancingWeight: 1,
        })),
      },
    ],
  });
}
