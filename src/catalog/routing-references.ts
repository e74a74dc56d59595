import { type Problems, at } from './input.js';
import type {
  ConfigEntry,
  Protocol,
  ServiceDefaultsEntry,
  ServiceRouterEntry,
  ServiceSplitterEntry,
} from './types.js';

/**
 * The checks on a `service-splitter` or `service-router` that need the rest of the mesh, run inside
 * its write (Consul compiles the affected chains when an entry is written and refuses what would
 * not compile): the services are HTTP-family with one protocol, named subsets are defined in their
 * service's resolver, named peers exist, and splitters do not split back into themselves.
 */
export interface RoutingReferences {
  entry<K extends RoutingKind>(
    kind: K,
    name: string,
  ): Extract<ConfigEntry, { kind: K }> | undefined;
  /** Every entry of a kind. */
  entries<K extends RoutingKind>(kind: K): readonly Extract<ConfigEntry, { kind: K }>[];
  /** Local names of the peerings that exist and are not being deleted. */
  readonly peers: readonly string[];
}

type RoutingKind =
  | 'service-resolver'
  | 'service-splitter'
  | 'service-router'
  | 'service-defaults'
  | 'proxy-defaults';

export function protocolOf(refs: Pick<RoutingReferences, 'entry'>, service: string): Protocol {
  return (
    refs.entry('service-defaults', service)?.protocol ??
    refs.entry('proxy-defaults', 'global')?.config.protocol ??
    'tcp'
  );
}

export function checkRoutingReferences(
  entry: ServiceSplitterEntry | ServiceRouterEntry,
  refs: RoutingReferences,
  p: Problems,
): void {
  const own = protocolOf(refs, entry.name);
  if (own === 'tcp') {
    p.add(
      'Name',
      `${entry.name}'s protocol is "tcp"; a ${entry.kind} needs HTTP: first write a service-defaults entry for ${entry.name} with Protocol "http" (or "http2", "grpc")`,
    );
    return;
  }
  const target = (service: string, subset: string, peer: string, field: string) => {
    if (peer) return checkPeer(peer, at(field, 'Peer'), refs.peers, p);
    const name = service || entry.name;
    const protocol = protocolOf(refs, name);
    if (name !== entry.name && protocol !== own)
      p.add(
        at(field, 'Service'),
        `${name}'s protocol is "${protocol}", ${entry.name}'s is "${own}"; a chain has one protocol: set ${name}'s service-defaults Protocol to "${own}"`,
      );
    if (subset && !(subset in (refs.entry('service-resolver', name)?.subsets ?? {})))
      p.add(
        at(field, 'ServiceSubset'),
        `${JSON.stringify(subset)} is not a subset of ${name}; define it in ${name}'s service-resolver first`,
      );
  };
  if (entry.kind === 'service-splitter') {
    entry.splits.forEach((s, i) => {
      target(s.service, s.serviceSubset, s.peer, at('Splits', i));
    });
    const splitter = (name: string) =>
      name === entry.name ? entry : refs.entry('service-splitter', name);
    const loop = splitLoop(entry.name, splitter);
    if (loop) p.add('Splits', `split in a loop (${loop.join(' → ')}); break the cycle`);
  } else
    entry.routes.forEach((r, i) => {
      const d = r.destination;
      target(d.service, d.serviceSubset, '', at(at('Routes', i), 'Destination'));
    });
}

function checkPeer(peer: string, field: string, peers: readonly string[], p: Problems): void {
  if (!peers.includes(peer))
    p.add(
      field,
      `${JSON.stringify(peer)} is not a peering of this cluster; establish it first${
        peers.length ? ` (peerings: ${peers.join(', ')})` : ' (there are none)'
      }`,
    );
}

/**
 * The services a split continues in another splitter (Consul: a split to another service without
 * a subset is split again by that service's splitter).
 */
export function splitsOnward(s: ServiceSplitterEntry): string[] {
  return s.splits
    .filter((x) => !x.peer && !x.serviceSubset && x.service && x.service !== s.name)
    .map((x) => x.service);
}

/** A path of splitters from `start` back to `start`, if there is one. */
function splitLoop(
  start: string,
  splitter: (name: string) => ServiceSplitterEntry | undefined,
): string[] | undefined {
  const walk = (name: string, path: string[]): string[] | undefined => {
    const s = splitter(name);
    if (!s) return undefined;
    for (const next of splitsOnward(s)) {
      if (next === start) return [...path, next];
      if (path.includes(next)) continue;
      const found = walk(next, [...path, next]);
      if (found) return found;
    }
    return undefined;
  };
  return walk(start, [start]);
}

/**
 * A `service-defaults` or `proxy-defaults` write may not take a splitter's or router's service off
 * HTTP (Consul refuses it too: the chain would no longer compile).
 */
export function checkProtocolChange(
  entry: ServiceDefaultsEntry | Extract<ConfigEntry, { kind: 'proxy-defaults' }>,
  refs: RoutingReferences,
  p: Problems,
): void {
  const after = (name: string) =>
    protocolOf(
      {
        entry: ((kind: RoutingKind, n: string) =>
          kind === entry.kind && (entry.kind === 'proxy-defaults' || n === entry.name)
            ? entry
            : refs.entry(kind, n)) as RoutingReferences['entry'],
      },
      name,
    );
  const field = entry.kind === 'proxy-defaults' ? 'Config.protocol' : 'Protocol';
  for (const kind of ['service-splitter', 'service-router'] as const)
    for (const e of refs.entries(kind))
      if (after(e.name) === 'tcp')
        p.add(
          field,
          `would make ${e.name} "tcp", but the ${kind} ${e.name} needs HTTP; delete that entry first`,
        );
}
