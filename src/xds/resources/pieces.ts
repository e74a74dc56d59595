import {
  type ConfigSnapshot,
  type MeshGatewaySnapshot,
  type SidecarSnapshot,
  type UpstreamIR,
  upstreamEdsClusters,
} from '../../snapshot/types.js';
import { edsClusterSpec, localAppClusterSpec, upstreamClusterSpecs } from './clusters.js';
import type { ResourceSpec } from './common.js';
import { loadAssignmentSpecs } from './endpoints.js';
import { gatewayListenerSpec, publicListenerSpec, upstreamListenerSpec } from './listeners.js';
import { upstreamRouteSpecs } from './routes.js';
import { leafSpec, rootsSpec, trustDomainsSpec } from './secrets.js';

/**
 * The parts of a snapshot of one kind (its upstreams, its clusters, its leaf, ...) and the
 * resources each generates from it alone. A part is the snapshot's own object: snapshots are
 * immutable and an incremental build keeps an untouched part as the very same object, and an
 * untouched list as the very same array, so a part that is the one published before has the same
 * resources (docs/architecture.md §2 "Incremental builds").
 */
export interface PieceGroup<T extends object = object> {
  readonly parts: readonly T[];
  specs(part: T): ResourceSpec[];
}

/** A group; `parts` is the snapshot's own array where it has one (kept whole when unchanged). */
function group<T extends object>(
  parts: readonly T[],
  specs: (part: T) => ResourceSpec[],
): PieceGroup {
  return { parts, specs: specs as (part: object) => ResourceSpec[] };
}

const none: readonly never[] = Object.freeze([]);
const one = <T extends object>(part: T | undefined): readonly T[] => (part ? [part] : none);

/**
 * Every resource of a proxy, group by group: one function per proxy kind, each a table of what
 * each part of the snapshot generates (Consul's agent/xds reads per type; here per part, so a
 * change regenerates the parts it touched and nothing else). A kind has always the same groups in
 * the same order, so the publisher matches a snapshot's groups with the last one's by position.
 */
export function pieceGroups(s: ConfigSnapshot): PieceGroup[] {
  return s.kind === 'connect-proxy' ? sidecarGroups(s) : meshGatewayGroups(s);
}

function sidecarGroups(s: SidecarSnapshot): PieceGroup[] {
  return [
    group([s.leaf], (leaf) => [leafSpec(leaf)]),
    group(s.roots, (r) => [rootsSpec(r)]),
    group(one(s.inbound), (t) => [trustDomainsSpec(t)]),
    group([s.publicListener], (pl) => [localAppClusterSpec(pl), publicListenerSpec(pl)]),
    group(s.upstreams, upstreamSpecs),
  ];
}

function upstreamSpecs(u: UpstreamIR): ResourceSpec[] {
  return [
    ...upstreamClusterSpecs(u),
    ...loadAssignmentSpecs(upstreamEdsClusters(u)),
    upstreamListenerSpec(u),
    ...upstreamRouteSpecs(u),
  ];
}

/**
 * A gateway's secrets exist only when some chain terminates TLS (see MeshGatewaySnapshot.leaf).
 */
function meshGatewayGroups(s: MeshGatewaySnapshot): PieceGroup[] {
  const secrets = s.leaf !== undefined;
  return [
    group(one(s.leaf), (leaf) => [leafSpec(leaf)]),
    group(secrets ? (s.roots ?? none) : none, (r) => [rootsSpec(r)]),
    group(secrets ? (s.peerInbound ?? none) : none, (t) => [trustDomainsSpec(t)]),
    group(s.clusters, (c) => [edsClusterSpec(c), ...loadAssignmentSpecs([c])]),
    group(s.listeners, (l) => [gatewayListenerSpec(l)]),
  ];
}
