import {
  type JsonObject,
  type Problems,
  at,
  nameRule,
  readArray,
  readBool,
  readObject,
  readString,
} from './input.js';
import type { ExportConsumer, SamenessGroupEntry, SamenessMember } from './types.js';

/**
 * `sameness-group` in Consul's JSON shape (Consul docs "Sameness group configuration entry
 * reference"): `DefaultForFailover`, `IncludeLocal` and `Members`, each `{Partition}` or `{Peer}`.
 * isthmus has one partition, `default`, so a `{Partition}` member is this cluster. Members are
 * in failover order. That the peers exist and that only one group is the default is checked when
 * the entry is written (`checkSamenessReferences`).
 */
export const samenessGroupFields = ['DefaultForFailover', 'IncludeLocal', 'Members'];

export function parseSamenessGroup(obj: JsonObject, p: Problems): SamenessGroupEntry | undefined {
  const name = readString(obj, 'Name', '', p, undefined, nameRule);
  const defaultForFailover = readBool(obj, 'DefaultForFailover', '', p, false);
  const includeLocal = readBool(obj, 'IncludeLocal', '', p, false);
  if (obj.Members === undefined || obj.Members === null)
    p.add('Members', 'required: a JSON array of {Peer} or {Partition}, in failover order');
  const members = readArray(obj, 'Members', '', p, (v, f) => readMember(v, f, p));
  const seen = new Map<string, string>();
  for (const { member, field } of members) {
    const key = 'peer' in member ? `peer ${member.peer}` : 'the local partition';
    const first = seen.get(key);
    if (first) p.add(field, `duplicate of ${first} (${key}); list each member once`);
    else seen.set(key, field);
  }
  if (
    name === undefined ||
    defaultForFailover === undefined ||
    includeLocal === undefined ||
    (Array.isArray(obj.Members) && members.length !== obj.Members.length)
  )
    return undefined;
  return {
    kind: 'sameness-group',
    name,
    defaultForFailover,
    includeLocal,
    members: members.map((m) => m.member),
  };
}

function readMember(
  value: unknown,
  field: string,
  p: Problems,
): { member: SamenessMember; field: string } | undefined {
  const obj = readObject(value, field, ['Partition', 'Peer'], p);
  if (!obj) return undefined;
  const hasPeer = obj.Peer !== undefined && obj.Peer !== null && obj.Peer !== '';
  const hasPartition =
    obj.Partition !== undefined && obj.Partition !== null && obj.Partition !== '';
  if (hasPeer === hasPartition)
    return p.add(field, 'must set exactly one of Peer (a cluster peer) or Partition ("default")');
  if (hasPartition) {
    const partition = readString(obj, 'Partition', field, p, undefined, {
      pattern: /^default$/,
      patternText: 'only "default" (isthmus has one partition: this cluster)',
    });
    return partition === undefined ? undefined : { member: { partition }, field };
  }
  const peer = readString(obj, 'Peer', field, p, undefined, nameRule);
  return peer === undefined ? undefined : { member: { peer }, field };
}

/** The peers of a group, in its order. */
export function samenessPeers(group: SamenessGroupEntry): string[] {
  return group.members.flatMap((m) => ('peer' in m ? [m.peer] : []));
}

/** What the group checks read: the other groups and the peerings a member may name. */
export interface SamenessReferences {
  readonly groups: readonly SamenessGroupEntry[];
  /** Local names of the peerings that exist and are not being deleted. */
  readonly peers: readonly string[];
}

/**
 * A member peer must be a peering of this cluster (Consul: a peer is added to a group once its
 * peering is established), and at most one group is the default for failover.
 */
export function checkSamenessReferences(
  entry: SamenessGroupEntry,
  refs: SamenessReferences,
  p: Problems,
): void {
  entry.members.forEach((m, i) => {
    if ('peer' in m && !refs.peers.includes(m.peer))
      p.add(
        at(at('Members', i), 'Peer'),
        `${JSON.stringify(m.peer)} is not a peering of this cluster; establish it first${
          refs.peers.length ? ` (peerings: ${refs.peers.join(', ')})` : ' (there are none)'
        }`,
      );
  });
  const other = refs.groups.find((g) => g.defaultForFailover && g.name !== entry.name);
  if (entry.defaultForFailover && other)
    p.add(
      'DefaultForFailover',
      `sameness-group ${JSON.stringify(other.name)} is already the default for failover; set it false there first`,
    );
}

/**
 * The peers an exported service's consumers name: each `{Peer}`, and every peer member of each
 * `{SamenessGroup}` (a group that does not exist names none).
 */
export function consumerPeers(
  consumers: readonly ExportConsumer[],
  group: (name: string) => SamenessGroupEntry | undefined,
): string[] {
  const peers = consumers.flatMap((c) => {
    if ('peer' in c) return [c.peer];
    const g = group(c.samenessGroup);
    return g ? samenessPeers(g) : [];
  });
  return [...new Set(peers)];
}
