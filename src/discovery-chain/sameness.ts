/**
 * Sameness groups in the discovery chain (docs/architecture.md §5b "Sameness groups"): the
 * failover targets a group gives a service are its members in order, each serving the service
 * under the same name. The local partition's member is the primary itself, which the compiler
 * drops ("don't fail over to yourself", Consul's compiler); a peer member is the peer's service.
 */
import type {
  CatalogReader,
  ResolverFailover,
  ResolverTarget,
  SamenessGroupEntry,
} from '../catalog/types.js';

export interface SamenessLookup {
  group(name: string): SamenessGroupEntry | undefined;
  /** The group with `DefaultForFailover` (at most one: checked on write). */
  defaultGroup(): SamenessGroupEntry | undefined;
}

export function samenessLookup(catalog: CatalogReader): SamenessLookup {
  return {
    group: (name) => catalog.configEntry('sameness-group', name),
    defaultGroup: () => catalog.configEntries('sameness-group').find((g) => g.defaultForFailover),
  };
}

/**
 * Where a target fails over: a resolver rule's own targets, the members of the group the rule
 * names, or, when no rule applies, the members of the default group (none without one).
 */
export function failoverTargets(
  rule: ResolverFailover | undefined,
  service: string,
  subset: string,
  groups: SamenessLookup | undefined,
): readonly ResolverTarget[] {
  if (rule && !rule.samenessGroup) return rule.targets;
  const group = rule?.samenessGroup ? groups?.group(rule.samenessGroup) : groups?.defaultGroup();
  if (!group) return [];
  const members = group.includeLocal ? [{ partition: 'default' }, ...group.members] : group.members;
  return members.map((m) =>
    'peer' in m
      ? { service, serviceSubset: '', peer: m.peer, datacenter: '' }
      : { service, serviceSubset: subset, peer: '', datacenter: '' },
  );
}
