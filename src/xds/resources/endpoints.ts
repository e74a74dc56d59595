import type { ClusterLoadAssignment } from '../../gen/envoy/config/endpoint/v3/endpoint.js';
import type { LbEndpoint } from '../../gen/envoy/config/endpoint/v3/endpoint_components.js';
import { SocketAddress_Protocol, type Address } from '../../gen/envoy/config/core/v3/address.js';
import { HealthStatus } from '../../gen/envoy/config/core/v3/health_check.js';
import type { EdsClusterIR } from '../../snapshot/types.js';
import { TypeUrl } from '../types.js';
import { spec, type ResourceSpec } from './common.js';

/** EDS: one ClusterLoadAssignment per EDS cluster. */
export function loadAssignmentSpecs(clusters: readonly EdsClusterIR[]): ResourceSpec[] {
  // A DNS cluster carries its hosts inline: it has no EDS resource.
  return clusters.filter((c) => !c.dns).map(loadAssignmentSpec);
}

function loadAssignmentSpec(c: EdsClusterIR): ResourceSpec {
  return spec(TypeUrl.endpoint, c.name, c.endpoints, () => buildLoadAssignment(c));
}

/**
 * Critical instances never get here; warning ones are routed to as DEGRADED (Envoy's last choice).
 * Built as plain literals: this is the hot path of large gateways, and fromPartial deep-copies.
 */
export function buildLoadAssignment(c: EdsClusterIR): ClusterLoadAssignment {
  const lbEndpoints: LbEndpoint[] = c.endpoints.map((e) => ({
    $type: 'envoy.config.endpoint.v3.LbEndpoint',
    hostIdentifier: {
      $case: 'endpoint',
      value: {
        $type: 'envoy.config.endpoint.v3.Endpoint',
        address: plainSocketAddress(e.address, e.port),
        hostname: '',
        additionalAddresses: [],
      },
    },
    healthStatus: e.health === 'healthy' ? HealthStatus.HEALTHY : HealthStatus.DEGRADED,
    loadBalancingWeight: 1,
  }));
  return {
    $type: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
    clusterName: c.name,
    namedEndpoints: {},
    endpoints: [
      {
        $type: 'envoy.config.endpoint.v3.LocalityLbEndpoints',
        // Proxyless gRPC clients need a locality with a weight (gRFC A27).
        locality: { $type: 'envoy.config.core.v3.Locality', region: '', zone: '', subZone: '' },
        loadBalancingWeight: 1,
        lbEndpoints,
        priority: 0,
      },
    ],
  };
}

function plainSocketAddress(address: string, port: number): Address {
  return {
    $type: 'envoy.config.core.v3.Address',
    address: {
      $case: 'socketAddress',
      value: {
        $type: 'envoy.config.core.v3.SocketAddress',
        protocol: SocketAddress_Protocol.TCP,
        address,
        portSpecifier: { $case: 'portValue', value: port },
        resolverName: '',
        ipv4Compat: false,
      },
    },
  };
}
