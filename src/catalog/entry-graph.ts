import { type FieldError, Problems, at } from './input.js';
import {
  type RoutingReferences,
  checkProtocolChange,
  checkRoutingReferences,
} from './routing-references.js';
import { routingDependentsBrokenBy, withDeleted, withWritten } from './routing-dependents.js';
import { checkSamenessReferences } from './sameness-group.js';
import { checkIntentionProtocols } from './service-intentions.js';
import { checkResolverReferences } from './service-resolver.js';
import type {
  ConfigEntry,
  ConfigEntryKind,
  ResolverTarget,
  SamenessGroupEntry,
  ServiceResolverEntry,
} from './types.js';

/**
 * Config entries name each other: a resolver names other services' subsets and sameness groups,
 * exported services name groups, routers and splitters name services, subsets and peers whose
 * protocol must stay HTTP, L7 intentions need an HTTP destination. As Consul does (`validateProposedConfigEntryInGraph`, run on
 * every write and delete), a write or a delete that would leave a dangling name is refused with a
 * 400 naming the entry that still holds it, so the graph the compiler walks is always whole.
 */
export interface CommittedEntries {
  config(kind: ConfigEntryKind, name: string): { readonly entry: ConfigEntry } | undefined;
  configsOf(kind: ConfigEntryKind): readonly { readonly entry: ConfigEntry }[];
}

/** Problems of writing `entry` over the committed entries; `peers` are the live peerings. */
export function checkEntryWrite(
  entry: ConfigEntry,
  committed: CommittedEntries,
  peers: readonly string[],
): readonly FieldError[] {
  const p = new Problems();
  const resolvers = entriesOf<ServiceResolverEntry>(committed, 'service-resolver');
  const groups = entriesOf<SamenessGroupEntry>(committed, 'sameness-group');
  const group = (name: string) => groups.find((g) => g.name === name);
  const refs = routingRefs(committed, peers);
  checkIntentionProtocols(entry, committed, p);
  switch (entry.kind) {
    case 'service-resolver':
      checkResolverReferences(
        entry,
        { resolver: (name) => resolvers.find((r) => r.name === name), peers },
        p,
      );
      for (const [key, rule] of Object.entries(entry.failover))
        if (rule.samenessGroup && !group(rule.samenessGroup))
          p.add(at(at('Failover', key), 'SamenessGroup'), missingGroup(rule.samenessGroup));
      subsetsStillNamed(entry.name, entry.subsets, resolvers, p);
      routingStillValid('Subsets', refs, withWritten(refs, entry), p);
      break;
    case 'sameness-group':
      checkSamenessReferences(entry, { groups, peers }, p);
      break;
    case 'service-splitter':
    case 'service-router':
      checkRoutingReferences(entry, refs, p);
      break;
    case 'service-defaults':
    case 'proxy-defaults': {
      const before = p.list.length;
      checkProtocolChange(entry, refs, p);
      // A router's own service going tcp is named above; the rest (a destination's protocol) here.
      if (p.list.length === before)
        routingStillValid(protocolField(entry.kind), refs, withWritten(refs, entry), p);
      break;
    }
    case 'exported-services':
      entry.services.forEach((s, i) => {
        s.consumers.forEach((c, j) => {
          if ('samenessGroup' in c && !group(c.samenessGroup))
            p.add(
              at(at(at(at('Services', i), 'Consumers'), j), 'SamenessGroup'),
              missingGroup(c.samenessGroup),
            );
        });
      });
      break;
    default:
      break;
  }
  return p.list;
}

/** Problems of deleting an entry others still name (the write of the rest stays valid). */
export function checkEntryDelete(
  kind: ConfigEntryKind,
  name: string,
  committed: CommittedEntries,
): readonly FieldError[] {
  const p = new Problems();
  if (kind === 'service-resolver')
    subsetsStillNamed(name, {}, entriesOf(committed, 'service-resolver'), p);
  if (kind === 'service-resolver' || kind === 'service-defaults' || kind === 'proxy-defaults') {
    const refs = routingRefs(committed, []);
    const broken = routingDependentsBrokenBy(refs, withDeleted(refs, kind, name));
    if (broken.length > 0)
      p.add(
        'Name',
        `${kind} ${JSON.stringify(name)} is still needed by ${broken.join(', ')}; change ${broken.length > 1 ? 'those' : 'that entry'} first`,
      );
    if (kind !== 'service-resolver') intentionsStillNeed(kind, name, committed, p);
  }
  if (kind === 'sameness-group') {
    const users = samenessUsers(name, committed);
    if (users.length > 0)
      p.add(
        'Name',
        `sameness-group ${JSON.stringify(name)} is still named by ${users.join(', ')}; change those first`,
      );
  }
  return p.list;
}

function routingRefs(committed: CommittedEntries, peers: readonly string[]): RoutingReferences {
  return {
    entry: (kind, name) => committed.config(kind, name)?.entry as never,
    entries: (kind) => committed.configsOf(kind).map((r) => r.entry) as never,
    peers,
  };
}

const protocolField = (kind: 'service-defaults' | 'proxy-defaults') =>
  kind === 'proxy-defaults' ? 'Config.protocol' : 'Protocol';

/** The routers and splitters a write would break, named on `field`. */
function routingStillValid(
  field: string,
  before: RoutingReferences,
  after: RoutingReferences,
  p: Problems,
): void {
  const broken = routingDependentsBrokenBy(before, after);
  if (broken.length > 0)
    p.add(
      field,
      `would break ${broken.join(', ')}; change ${broken.length > 1 ? 'those' : 'that entry'} first`,
    );
}

/**
 * Deleting the `service-defaults` (or `proxy-defaults`) that gives a service with L7 intentions
 * its HTTP protocol: the same check as writing the protocol the service would fall back to.
 */
function intentionsStillNeed(
  kind: 'service-defaults' | 'proxy-defaults',
  name: string,
  committed: CommittedEntries,
  p: Problems,
): void {
  const global = committed.config('proxy-defaults', 'global')?.entry;
  const fallback =
    kind === 'proxy-defaults' || global?.kind !== 'proxy-defaults'
      ? 'tcp'
      : (global.config.protocol ?? 'tcp');
  const as = (
    kind === 'proxy-defaults'
      ? { kind, name, config: { protocol: 'tcp' } }
      : { kind, name, protocol: fallback }
  ) as ConfigEntry;
  const q = new Problems();
  checkIntentionProtocols(as, committed, q);
  for (const x of q.list)
    p.add('Name', `${kind} ${JSON.stringify(name)} is still needed: without it, ${x.problem}`);
}

const missingGroup = (name: string) =>
  `${JSON.stringify(name)} is not a sameness-group; write that entry first`;

function entriesOf<E extends ConfigEntry>(c: CommittedEntries, kind: E['kind']): E[] {
  return c.configsOf(kind).map((r) => r.entry as E);
}

/**
 * Another resolver's Redirect or Failover target names a subset of `service` that `subsets` (the
 * service's resolver after the change) no longer defines: Consul's compiler would fail on it
 * ("does not have a subset named"), so the change is refused.
 */
function subsetsStillNamed(
  service: string,
  subsets: Readonly<Record<string, unknown>>,
  resolvers: readonly ServiceResolverEntry[],
  p: Problems,
): void {
  for (const r of resolvers) {
    if (r.name === service) continue;
    const check = (t: ResolverTarget, field: string) => {
      if (t.peer || t.datacenter || t.service !== service || !t.serviceSubset) return;
      if (t.serviceSubset in subsets) return;
      p.add(
        at('Subsets', t.serviceSubset),
        `still named by service-resolver ${JSON.stringify(r.name)} (${field}); change that entry first`,
      );
    };
    if (r.redirect) check(r.redirect, 'Redirect');
    for (const [key, rule] of Object.entries(r.failover))
      rule.targets.forEach((t, i) => {
        check(t, at(at(at('Failover', key), 'Targets'), i));
      });
  }
}

/** `service-resolver X (Failover.*)` / `exported-services default (Services[0])` naming a group. */
function samenessUsers(name: string, committed: CommittedEntries): string[] {
  const users: string[] = [];
  for (const r of entriesOf<ServiceResolverEntry>(committed, 'service-resolver'))
    for (const [key, rule] of Object.entries(r.failover))
      if (rule.samenessGroup === name)
        users.push(`service-resolver ${JSON.stringify(r.name)} (${at('Failover', key)})`);
  const exports = committed.config('exported-services', 'default')?.entry;
  if (exports?.kind === 'exported-services')
    exports.services.forEach((s, i) => {
      if (s.consumers.some((c) => 'samenessGroup' in c && c.samenessGroup === name))
        users.push(`exported-services "default" (${at('Services', i)}.Consumers)`);
    });
  return users;
}
