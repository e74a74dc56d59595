import { Problems } from './input.js';
import { type RoutingReferences, checkRoutingReferences } from './routing-references.js';
import type { ConfigEntry, ServiceRouterEntry, ServiceSplitterEntry } from './types.js';

/**
 * Routers and splitters lean on other entries: a `service-defaults` (or `proxy-defaults`) gives
 * their services an HTTP protocol, and a `service-resolver` defines the subsets they name. A change
 * to one of those (a write or a delete) re-checks every router and splitter against the entries as
 * they would be after it, as Consul re-validates the graph on every write and delete
 * (`validateProposedConfigEntryInGraph`); each one that would newly break is named with what would
 * break in it. Problems a router already had before the change are not the change's doing.
 */
export function routingDependentsBrokenBy(
  before: RoutingReferences,
  after: RoutingReferences,
): string[] {
  const out: string[] = [];
  for (const kind of ['service-router', 'service-splitter'] as const)
    for (const e of after.entries(kind)) {
      const had = new Set(problemsOf(e, before));
      const now = problemsOf(e, after).filter((x) => !had.has(x));
      if (now.length > 0) out.push(`${e.kind} ${JSON.stringify(e.name)} (${now.join('; ')})`);
    }
  return out;
}

function problemsOf(e: ServiceRouterEntry | ServiceSplitterEntry, refs: RoutingReferences) {
  const p = new Problems();
  checkRoutingReferences(e, refs, p);
  return p.list.map((x) => `${x.field}: ${x.problem}`);
}

/** `refs` with `entry` written over its namesake. */
export function withWritten(refs: RoutingReferences, entry: ConfigEntry): RoutingReferences {
  const same = (e: ConfigEntry) => e.kind === entry.kind && e.name === entry.name;
  return {
    peers: refs.peers,
    entry: ((kind: ConfigEntry['kind'], name: string) =>
      kind === entry.kind && name === entry.name
        ? entry
        : refs.entry(kind as never, name)) as RoutingReferences['entry'],
    entries: ((kind: ConfigEntry['kind']) => [
      ...(refs.entries(kind as never) as readonly ConfigEntry[]).filter((e) => !same(e)),
      ...(kind === entry.kind ? [entry] : []),
    ]) as RoutingReferences['entries'],
  };
}

/** `refs` without the entry `kind`/`name`. */
export function withDeleted(
  refs: RoutingReferences,
  kind: ConfigEntry['kind'],
  name: string,
): RoutingReferences {
  return {
    peers: refs.peers,
    entry: ((k: ConfigEntry['kind'], n: string) =>
      k === kind && n === name
        ? undefined
        : refs.entry(k as never, n)) as RoutingReferences['entry'],
    entries: ((k: ConfigEntry['kind']) =>
      (refs.entries(k as never) as readonly ConfigEntry[]).filter(
        (e) => !(e.kind === kind && e.name === name),
      )) as RoutingReferences['entries'],
  };
}
