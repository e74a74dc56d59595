import { parseSubsetFilter, subsetFilterHelp } from './subset-filter.js';
import { parseDurationSeconds } from './checks.js';
import { readLoadBalancer } from './load-balancer.js';
import {
  type JsonObject,
  type Problems,
  at,
  checkString,
  nameRule,
  readBool,
  readEnum,
  readObject,
  readOptionalObject,
  readString,
} from './input.js';
import type {
  ResolverFailover,
  ResolverSubset,
  ResolverTarget,
  ServiceResolverEntry,
} from './types.js';

/**
 * `service-resolver` in Consul's JSON shape (Consul docs "Service resolver configuration
 * reference"). What isthmus does not implement yet is refused with the field named, never ignored.
 * References to other entries and to peers are checked against the catalog when the entry is
 * written (`checkResolverReferences`).
 */
export const serviceResolverFields = [
  'DefaultSubset',
  'Subsets',
  'Redirect',
  'Failover',
  'ConnectTimeout',
  'RequestTimeout',
  'LoadBalancer',
  'PrioritizeByLocality',
];

const onlyDefault = {
  pattern: /^default$/,
  patternText: 'only "default" (isthmus has the default namespace and partition only)',
};
const notYet = (what: string) => `not supported yet (${what}); remove the field`;
/** Subset names end up in SNIs and cluster names, like service names. */
const subsetRule = nameRule;

export function parseServiceResolver(
  obj: JsonObject,
  name: string | undefined,
  p: Problems,
): ServiceResolverEntry | undefined {
  if (obj.PrioritizeByLocality !== undefined && obj.PrioritizeByLocality !== null)
    p.add('PrioritizeByLocality', notYet('locality-aware routing'));
  const subsets = readSubsets(obj, p);
  const defaultSubset = readString(obj, 'DefaultSubset', '', p, '', subsetRule);
  if (defaultSubset && !(defaultSubset in subsets))
    p.add(
      'DefaultSubset',
      `${JSON.stringify(defaultSubset)} is not one of Subsets; define it there`,
    );
  const redirectObj = readOptionalObject(
    obj,
    'Redirect',
    '',
    ['Service', 'ServiceSubset', 'Namespace', 'Partition', 'Datacenter', 'Peer', 'SamenessGroup'],
    p,
  );
  const redirect = redirectObj ? readTarget(redirectObj, 'Redirect', p) : undefined;
  if (
    redirectObj &&
    redirect &&
    !redirect.service &&
    !redirect.serviceSubset &&
    !redirect.peer &&
    !redirect.datacenter
  )
    p.add('Redirect', 'must name at least one of Service, ServiceSubset, Datacenter or Peer');
  const failover = readFailover(obj, p);
  if (redirectObj && Object.keys(failover).length > 0)
    p.add(
      'Failover',
      "cannot be set together with Redirect (fail over in the redirect target's resolver)",
    );
  if (name !== undefined) checkOwnSubsets(name, subsets, redirect, failover, p);
  const connectTimeoutMs = readDurationMs(obj, 'ConnectTimeout', p);
  const requestTimeoutMs = readDurationMs(obj, 'RequestTimeout', p);
  const loadBalancer = readLoadBalancer(obj, p);
  if (name === undefined || defaultSubset === undefined) return undefined;
  return {
    kind: 'service-resolver',
    name,
    namespace: 'default',
    partition: 'default',
    defaultSubset,
    subsets,
    ...(redirect ? { redirect } : {}),
    failover,
    connectTimeoutMs: connectTimeoutMs ?? 0,
    requestTimeoutMs: requestTimeoutMs ?? 0,
    ...(loadBalancer ? { loadBalancer } : {}),
  };
}

function readSubsets(obj: JsonObject, p: Problems): Record<string, ResolverSubset> {
  const out: Record<string, ResolverSubset> = {};
  const raw = obj.Subsets;
  if (raw === undefined || raw === null) return out;
  if (typeof raw !== 'object' || Array.isArray(raw))
    return p.add('Subsets', 'must be a JSON object {name: {Filter, OnlyPassing}}') ?? out;
  for (const [subset, value] of Object.entries(raw as JsonObject).sort(byKey)) {
    const field = at('Subsets', subset);
    if (checkString(subset, field, p, subsetRule) === undefined) continue;
    const s = readObject(value, field, ['Filter', 'OnlyPassing'], p);
    if (!s) continue;
    const filter = readString(s, 'Filter', field, p, '');
    const onlyPassing = readBool(s, 'OnlyPassing', field, p, false);
    if (filter === undefined || onlyPassing === undefined) continue;
    const parsed = parseSubsetFilter(filter);
    if (!parsed.ok)
      p.add(
        at(field, 'Filter'),
        `${JSON.stringify(parsed.clause)} is not understood; isthmus reads ${subsetFilterHelp}`,
      );
    else out[subset] = { filter, onlyPassing };
  }
  return out;
}

const byKey = ([a]: [string, unknown], [b]: [string, unknown]) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * A Redirect or a failover target: a service (subset) here, in another datacenter, or on a peer.
 */
function readTarget(obj: JsonObject, field: string, p: Problems): ResolverTarget | undefined {
  if (obj.SamenessGroup !== undefined && obj.SamenessGroup !== null && obj.SamenessGroup !== '')
    p.add(at(field, 'SamenessGroup'), notYet('sameness groups'));
  for (const key of ['Namespace', 'Partition'])
    readString(obj, key, field, p, 'default', onlyDefault);
  const service = readString(obj, 'Service', field, p, '', nameRule);
  const serviceSubset = readString(obj, 'ServiceSubset', field, p, '', subsetRule);
  const peer = readString(obj, 'Peer', field, p, '', nameRule);
  const datacenter = readString(obj, 'Datacenter', field, p, '', nameRule);
  if (peer && datacenter)
    p.add(
      at(field, 'Datacenter'),
      'cannot be set together with Peer (a peer has its own datacenters)',
    );
  if (datacenter && serviceSubset)
    p.add(
      at(field, 'ServiceSubset'),
      'cannot be set together with Datacenter yet (subsets are resolved in this datacenter only)',
    );
  if (peer && serviceSubset)
    p.add(
      at(field, 'ServiceSubset'),
      "cannot be set together with Peer (a peer's subsets are not replicated)",
    );
  if (
    service === undefined ||
    serviceSubset === undefined ||
    peer === undefined ||
    datacenter === undefined
  )
    return undefined;
  return { service, serviceSubset, peer, datacenter };
}

function readFailover(obj: JsonObject, p: Problems): Record<string, ResolverFailover> {
  const out: Record<string, ResolverFailover> = {};
  const raw = obj.Failover;
  if (raw === undefined || raw === null) return out;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    p.add('Failover', 'must be a JSON object {"*" or subset: {Targets: [...]}}');
    return out;
  }
  for (const [key, value] of Object.entries(raw as JsonObject).sort(byKey)) {
    const field = at('Failover', key);
    if (key !== '*' && checkString(key, field, p, subsetRule) === undefined) continue;
    const rule = readFailoverEntry(value, field, p);
    if (rule) out[key] = rule;
  }
  return out;
}

const targetFields = ['Service', 'ServiceSubset', 'Namespace', 'Partition', 'Datacenter', 'Peer'];

function readFailoverEntry(
  value: unknown,
  field: string,
  p: Problems,
): ResolverFailover | undefined {
  const f = readObject(
    value,
    field,
    ['Service', 'ServiceSubset', 'Namespace', 'SamenessGroup', 'Datacenters', 'Targets', 'Policy'],
    p,
  );
  if (!f) return undefined;
  const policy = readOptionalObject(f, 'Policy', field, ['Mode', 'Regions'], p);
  if (policy) {
    readEnum(policy, 'Mode', at(field, 'Policy'), p, ['', 'sequential'] as const, '');
    if (policy.Regions !== undefined && policy.Regions !== null)
      p.add(at(field, 'Policy.Regions'), notYet('order-by-locality failover'));
  }
  if (f.Datacenters !== undefined && f.Datacenters !== null && !Array.isArray(f.Datacenters))
    p.add(at(field, 'Datacenters'), 'must be a JSON array of datacenter names');
  if (f.Targets !== undefined && f.Targets !== null && !Array.isArray(f.Targets))
    p.add(
      at(field, 'Targets'),
      'must be a JSON array of {Service, ServiceSubset, Datacenter, Peer}',
    );
  if (f.SamenessGroup !== undefined && f.SamenessGroup !== null && f.SamenessGroup !== '')
    return readFailoverSameness(f, field, p);
  const targets =
    Array.isArray(f.Targets) && f.Targets.length > 0
      ? readFailoverTargets(f, f.Targets, field, p)
      : readFailoverByDatacenter(f, field, p);
  return targets && { targets };
}

/** `SamenessGroup`: the group's members in order, instead of targets (§5b "Sameness groups"). */
function readFailoverSameness(
  f: JsonObject,
  field: string,
  p: Problems,
): ResolverFailover | undefined {
  for (const key of ['Service', 'ServiceSubset', 'Namespace', 'Targets', 'Datacenters']) {
    const v = f[key];
    if (v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0))
      p.add(
        at(field, key),
        'cannot be set together with SamenessGroup (the group names the targets)',
      );
  }
  const samenessGroup = readString(f, 'SamenessGroup', field, p, undefined, nameRule);
  return samenessGroup === undefined ? undefined : { targets: [], samenessGroup };
}

/** `Targets`: each a service (subset) here, in another datacenter, or on a peer. */
function readFailoverTargets(
  f: JsonObject,
  targets: readonly unknown[],
  field: string,
  p: Problems,
): ResolverTarget[] {
  for (const key of ['Service', 'ServiceSubset', 'Namespace'])
    if (f[key] !== undefined && f[key] !== null && f[key] !== '')
      p.add(at(field, key), 'cannot be set together with Targets (put it in each target)');
  if (Array.isArray(f.Datacenters) && f.Datacenters.length > 0)
    p.add(
      at(field, 'Datacenters'),
      'cannot be set together with Targets (one target per datacenter)',
    );
  const out: ResolverTarget[] = [];
  targets.forEach((t, i) => {
    const tf = at(at(field, 'Targets'), i);
    const obj = readObject(t, tf, targetFields, p);
    const target = obj ? readTarget(obj, tf, p) : undefined;
    if (target) out.push(target);
  });
  return out;
}

/** The older form: `Service` / `ServiceSubset`, in this datacenter or in each of `Datacenters`. */
function readFailoverByDatacenter(
  f: JsonObject,
  field: string,
  p: Problems,
): ResolverTarget[] | undefined {
  const own = { Service: f.Service, ServiceSubset: f.ServiceSubset, Namespace: f.Namespace };
  const datacenters = Array.isArray(f.Datacenters) ? (f.Datacenters as unknown[]) : [];
  if (datacenters.length === 0) {
    const base = readTarget(own, field, p);
    if (base && !base.service && !base.serviceSubset)
      p.add(field, 'must have Targets, Datacenters, Service or ServiceSubset');
    return base && [base];
  }
  const out: ResolverTarget[] = [];
  datacenters.forEach((dc, i) => {
    const datacenter = checkString(dc, at(at(field, 'Datacenters'), i), p, nameRule);
    const target = datacenter
      ? readTarget({ ...own, Datacenter: datacenter }, field, p)
      : undefined;
    if (target) out.push(target);
  });
  return out;
}

/** Subsets named without a Service are the resolver's own: they must be among its Subsets. */
function checkOwnSubsets(
  name: string,
  subsets: Readonly<Record<string, ResolverSubset>>,
  redirect: ResolverTarget | undefined,
  failover: Readonly<Record<string, ResolverFailover>>,
  p: Problems,
): void {
  const own = (t: ResolverTarget) => !t.peer && (t.service === '' || t.service === name);
  const check = (t: ResolverTarget, field: string) => {
    if (own(t) && t.serviceSubset && !(t.serviceSubset in subsets))
      p.add(
        at(field, 'ServiceSubset'),
        `${JSON.stringify(t.serviceSubset)} is not one of Subsets; define it there`,
      );
  };
  if (redirect) {
    check(redirect, 'Redirect');
    if (own(redirect) && !redirect.datacenter && !redirect.serviceSubset)
      p.add('Redirect', `redirects ${name} to itself; name another Service, Datacenter or Peer`);
  }
  for (const [key, { targets }] of Object.entries(failover)) {
    if (key !== '*' && !(key in subsets))
      p.add(
        at('Failover', key),
        `${JSON.stringify(key)} is not one of Subsets; use "*" or a defined subset`,
      );
    targets.forEach((t, i) => {
      check(t, at(at(at('Failover', key), 'Targets'), i));
    });
  }
}

function readDurationMs(obj: JsonObject, key: string, p: Problems): number | undefined {
  const value = obj[key];
  if (value === undefined || value === null || value === '' || value === '0s') return 0;
  const seconds = typeof value === 'string' ? parseDurationSeconds(value) : undefined;
  if (seconds === undefined || seconds > 3600)
    return p.add(
      key,
      `must be a duration up to 1h such as "5s" or "500ms" (got ${JSON.stringify(value)})`,
    );
  return Math.round(seconds * 1000);
}

/** What the reference check reads: the committed resolvers and the peerings a target may name. */
export interface ResolverReferences {
  resolver(name: string): ServiceResolverEntry | undefined;
  /** Local names of the peerings that exist and are not being deleted. */
  readonly peers: readonly string[];
}

/**
 * The checks that need the rest of the mesh, run when the entry is written: named peers exist,
 * another service's subsets are defined in its resolver, and redirects do not loop.
 */
export function checkResolverReferences(
  entry: ServiceResolverEntry,
  refs: ResolverReferences,
  p: Problems,
): void {
  const resolver = (name: string) => (name === entry.name ? entry : refs.resolver(name));
  const check = (t: ResolverTarget, field: string) => {
    if (t.peer && !refs.peers.includes(t.peer))
      p.add(
        at(field, 'Peer'),
        `${JSON.stringify(t.peer)} is not a peering of this cluster; establish it first${
          refs.peers.length ? ` (peerings: ${refs.peers.join(', ')})` : ' (there are none)'
        }`,
      );
    const service = t.service || entry.name;
    if (
      !t.peer &&
      t.serviceSubset &&
      service !== entry.name &&
      !(t.serviceSubset in (resolver(service)?.subsets ?? {}))
    )
      p.add(
        at(field, 'ServiceSubset'),
        `${JSON.stringify(t.serviceSubset)} is not a subset of ${service}; define it in ${service}'s service-resolver first`,
      );
  };
  if (entry.redirect) check(entry.redirect, 'Redirect');
  for (const [key, { targets }] of Object.entries(entry.failover))
    targets.forEach((t, i) => {
      check(t, at(at(at('Failover', key), 'Targets'), i));
    });
  const loop = redirectLoop(entry.name, resolver);
  if (loop) p.add('Redirect', `redirects in a loop (${loop.join(' → ')}); break the cycle`);
}

/** A redirect to another local service continues in that service's resolver (Consul's chain). */
export function nextRedirect(r: ServiceResolverEntry | undefined): string | undefined {
  const t = r?.redirect;
  if (!t || t.peer || t.datacenter || !t.service || t.service === r.name) return undefined;
  return t.service;
}

function redirectLoop(
  start: string,
  resolver: (name: string) => ServiceResolverEntry | undefined,
): string[] | undefined {
  const path = [start];
  for (
    let next = nextRedirect(resolver(start));
    next !== undefined;
    next = nextRedirect(resolver(next))
  ) {
    path.push(next);
    if (next === start) return path;
    if (path.indexOf(next) !== path.length - 1) return undefined; // a loop elsewhere, refused when written
  }
  return undefined;
}
