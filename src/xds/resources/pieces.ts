import {
  type ConfigSnapshot,
  type MeshGatewaySnapshot,
  type SidecarSnapshot,
  upstreamEdsClusters,
} from '../../snapshot/types.js';
import { edsClusterSpec, localAppClusterSpec, upstreamClusterSpecs } from './clusters.js';
import type { ResourceSpec } from './common.js';
import { loadAssignmentSpecs } from './endpoints.js';
import { gatewayListenerSpec, publicListenerSpec, upstreamListenerSpec } from './listeners.js';
import { upstreamRouteSpecs } from './routes.js';
import { leafSpec, rootsSpec, trustDomainsSpec } from './secrets.js';

/**
 * A part of a snapshot and the resources generated from it alone. `of` is the snapshot's own
 * object for that part (an upstream, a cluster, a listener, a secret): snapshots are immutable and
 * an incremental build keeps an untouched part as the very same object, so a piece whose `of` is
 * the one published before has the same resources (docs/architecture.md §2 "Incremental builds").
 */
export interface ResourcePiece {
  readonly of: object;
  specs(): ResourceSpec[];
}

/**
 * Every resource of a proxy, piece by piece: one function per proxy kind, each a table of what
 * each part of the snapshot generates (Consul's agent/xds reads per type; here per part, so a
 * change regenerates the parts it touched and nothing else).
 */
export function resourcePieces(s: ConfigSnapshot): ResourcePiece[] {
  return s.kind === 'connect-proxy' ? sidecarPieces(s) : meshGatewayPieces(s);
}

function sidecarPieces(s: SidecarSnapshot): ResourcePiece[] {
  const pl = s.publicListener;
  return [
    { of: s.leaf, specs: () => [leafSpec(s.leaf)] },
    ...s.roots.map((r) => ({ of: r, specs: () => [rootsSpec(r)] })),
    ...(s.inbound ? [{ of: s.inbound, specs: () => [trustDomainsSpec(s.inbound!)] }] : []),
    { of: pl, specs: () => [localAppClusterSpec(pl), publicListenerSpec(pl)] },
    ...s.upstreams.map((u) => ({
      of: u,
      specs: () => [
        ...upstreamClusterSpecs(u),
        ...loadAssignmentSpecs(upstreamEdsClusters(u)),
        upstreamListenerSpec(u),
        ...upstreamRouteSpecs(u),
      ],
    })),
  ];
}

/**
 * A gateway's secrets exist only when some chain terminates TLS (see MeshGatewaySnapshot.leaf).
 */
function meshGatewayPieces(s: MeshGatewaySnapshot): ResourcePiece[] {
  const secrets: ResourcePiece[] = s.leaf
    ? [
        { of: s.leaf, specs: () => [leafSpec(s.leaf!)] },
        ...(s.roots ?? []).map((r) => ({ of: r, specs: () => [rootsSpec(r)] })),
        ...(s.peerInbound ?? []).map((t) => ({ of: t, specs: () => [trustDomainsSpec(t)] })),
      ]
    : [];
  return [
    ...secrets,
    ...s.clusters.map((c) => ({
      of: c,
      specs: () => [edsClusterSpec(c), ...loadAssignmentSpecs([c])],
    })),
    ...s.listeners.map((l) => ({ of: l, specs: () => [gatewayListenerSpec(l)] })),
  ];
}
