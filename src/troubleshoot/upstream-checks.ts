import type { PeeringState } from '../peering/types.js';
import { printable } from '../terminal.js';
import {
  type Check,
  type Checklist,
  checklist,
  fail,
  formatDuration,
  pass,
  renderChecklist,
  skip,
} from './checklist.js';
import type { ResourceFact } from './proxy-checks.js';

/** How the upstream resolved: its service, and which entry gave the failover targets. */
export interface ChainFact {
  readonly service: string;
  /** The service has a `service-resolver` of its own. */
  readonly resolver: boolean;
  /** `service-resolver api`, `sameness-group shop (DefaultForFailover)`, or '' (no failover). */
  readonly failoverFrom: string;
  readonly connectTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
}

/** One target of the chain, in failover order (the first is the primary). */
export interface TargetFact {
  /** Consul's target ID. */
  readonly id: string;
  readonly service: string;
  readonly subset: string;
  /** '' for this cluster. */
  readonly peer: string;
  readonly datacenter?: string;
  /** The Envoy cluster it is built as; absent when it cannot be built yet (a peer's, unknown). */
  readonly cluster?: string;
  readonly sni?: string;
  /** Instances that can take traffic, of those the target selects. */
  readonly healthy: number;
  readonly total: number;
  /** Local subset: its filter, and whether a resolver still defines it. */
  readonly subsetFilter?: string;
  readonly subsetDefined?: boolean;
  /** Local: every instance of the service, whatever the subset. */
  readonly serviceInstances?: number;
  /** Peer: the peering's state (undefined: no such peering), its bundle, its gateways' entries. */
  readonly peeringState?: PeeringState | undefined;
  readonly bundle?: boolean;
  readonly meshEndpoints?: boolean;
}

/**
 * One route of the upstream's `service-router` (or the catch-all; a `service-splitter` alone is
 * one catch-all route): per split, its resolver node's targets in failover order.
 */
export interface RouteFact {
  /** What the route matches; '' for every request. */
  readonly match: string;
  readonly splits: readonly { readonly weight: number; readonly targets: readonly TargetFact[] }[];
}

export interface UpstreamFacts {
  readonly proxyId: string;
  /** `api`, or `api?peer=p`. */
  readonly upstream: string;
  readonly datacenter: string;
  readonly chain: ChainFact;
  readonly targets: readonly TargetFact[];
  /** The aggregate cluster's name, when the upstream has one. */
  readonly aggregate?: string | undefined;
  /** The proxy's CDS resources and their xDS status; undefined when it is not connected. */
  readonly clusters?: readonly ResourceFact[] | undefined;
  /**
   * Set when a router or splitter applies: its routes in order, the catch-all last (`targets` are
   * then the catch-all's first split).
   */
  readonly routes?: readonly RouteFact[] | undefined;
}

/** The JSON of `GET /v1/troubleshoot/upstream/...`: the checklist, the chain and its targets. */
export interface UpstreamReport extends Checklist {
  readonly Chain: {
    readonly Service: string;
    readonly Resolver: boolean;
    readonly FailoverFrom: string;
    readonly Aggregate?: string;
    readonly ConnectTimeout?: string;
    readonly RequestTimeout?: string;
  };
  readonly Targets: readonly {
    readonly ID: string;
    readonly Cluster: string;
    readonly SNI: string;
    readonly Healthy: number;
    readonly Total: number;
    /** The proxy's xDS status of the cluster (SYNCED = ACKed), or NOT_BUILT / NOT_CONNECTED. */
    readonly Envoy: string;
  }[];
  /** Router and splitter routes in order (absent without either). */
  readonly Routes?: readonly {
    /** '' for every request (the catch-all). */
    readonly Match: string;
    readonly Splits: readonly {
      readonly Weight: number;
      /** The resolver node's primary target. */
      readonly Target: string;
      /** The target traffic goes to (the primary or a failover one); '' when none is healthy. */
      readonly TrafficTo: string;
      readonly Healthy: number;
      readonly Total: number;
    }[];
  }[];
}

/**
 * `troubleshoot upstream` (issue 16): for one upstream of a proxy, the chain it resolved to, which
 * targets have healthy instances, and whether the proxy ACKed their clusters.
 */
export function upstreamReport(f: UpstreamFacts): UpstreamReport {
  const status = (name: string | undefined) =>
    !name
      ? 'NOT_BUILT'
      : !f.clusters
        ? 'NOT_CONNECTED'
        : (f.clusters.find((c) => c.name === name)?.status ?? 'NOT_SENT');
  const checks: Check[] = [
    healthyTarget(f),
    ...(f.routes ? [routesServed(f.routes)] : []),
    ...f.targets.flatMap((t) => (t.peer ? peerChecks(t) : localChecks(t))),
    acked(f, status),
  ];
  const list = checklist(`Upstream ${f.upstream} of proxy ${f.proxyId} (${f.datacenter})`, checks);
  const c = f.chain;
  return {
    ...list,
    Chain: {
      Service: c.service,
      Resolver: c.resolver,
      FailoverFrom: c.failoverFrom,
      ...(f.aggregate ? { Aggregate: f.aggregate } : {}),
      ...(c.connectTimeoutMs ? { ConnectTimeout: formatDuration(c.connectTimeoutMs) } : {}),
      ...(c.requestTimeoutMs ? { RequestTimeout: formatDuration(c.requestTimeoutMs) } : {}),
    },
    Targets: f.targets.map((t) => ({
      ID: t.id,
      Cluster: t.cluster ?? '',
      SNI: t.sni ?? '',
      Healthy: t.healthy,
      Total: t.total,
      Envoy: status(t.cluster),
    })),
    ...(f.routes ? { Routes: f.routes.map(routeJson) } : {}),
  };
}

/** The first target of a split's resolver node that is built and has a healthy instance. */
const servingTarget = (targets: readonly TargetFact[]) =>
  targets.find((t) => t.cluster && t.healthy > 0);

function routeJson(r: RouteFact): NonNullable<UpstreamReport['Routes']>[number] {
  return {
    Match: r.match,
    Splits: r.splits.map((s) => {
      const serving = servingTarget(s.targets);
      const primary = s.targets[0];
      return {
        Weight: s.weight,
        Target: primary?.id ?? '',
        TrafficTo: serving?.id ?? '',
        Healthy: (serving ?? primary)?.healthy ?? 0,
        Total: (serving ?? primary)?.total ?? 0,
      };
    }),
  };
}

/** Every route's splits reach a target with healthy instances (else that share fails: 503). */
function routesServed(routes: readonly RouteFact[]): Check {
  const name = 'every route reaches a healthy target';
  const dead = routes.flatMap((r, i) =>
    r.splits
      .filter((s) => !servingTarget(s.targets))
      .map((s) => `route ${i + 1} (${r.match || 'every request'}) → ${s.targets[0]?.id ?? '?'}`),
  );
  const splits = routes.reduce((n, r) => n + r.splits.length, 0);
  if (dead.length === 0)
    return pass(name, `${routes.length} routes, ${splits} splits: each has a healthy target`);
  return fail(
    name,
    `no healthy target for ${dead.join(', ')}: those requests get 503`,
    'bring an instance of that target back to passing, or change the service-router or service-splitter that sends there',
  );
}

function healthyTarget(f: UpstreamFacts): Check {
  const name = 'a target with healthy instances';
  const first = f.targets.find((t) => t.cluster && t.healthy > 0);
  if (first) {
    const i = f.targets.indexOf(first);
    return pass(
      name,
      `traffic goes to ${first.id} (${first.healthy} of ${first.total} healthy)${
        i > 0 ? `: ${i} target${i > 1 ? 's' : ''} before it ha${i > 1 ? 've' : 's'} none` : ''
      }`,
    );
  }
  return fail(
    name,
    `${f.targets.length === 1 ? 'its only target has no' : `none of its ${f.targets.length} targets has a`} healthy instance: requests to ${f.upstream} fail`,
    `bring an instance of ${f.chain.service} back to passing (isthmus services list shows its checks),\nor give it somewhere to fail over: a service-resolver Failover, or a sameness-group with DefaultForFailover`,
  );
}

function localChecks(t: TargetFact): Check[] {
  if (!t.subset) return [];
  const name = `subset ${t.subset} of ${t.service} matches instances`;
  if (t.subsetDefined === false)
    return [
      fail(
        name,
        `no service-resolver ${t.service} defines subset ${t.subset}`,
        `define it in service-resolver ${t.service} Subsets, or stop naming it`,
      ),
    ];
  if (t.total === 0)
    return [
      fail(
        name,
        `Filter ${JSON.stringify(t.subsetFilter ?? '')} matches none of the ${t.serviceInstances ?? 0} instances of ${t.service}`,
        `register instances with the Meta or Tags the Filter names, or change the Filter in service-resolver ${t.service}`,
      ),
    ];
  return [pass(name, `${t.total} of ${t.serviceInstances ?? t.total} instances match`)];
}

function peerChecks(t: TargetFact): Check[] {
  const peer = t.peer;
  const active = `peering ${peer} ACTIVE`;
  const replicated = `${t.service} replicated from ${peer}`;
  if (t.peeringState === undefined)
    return [
      fail(
        active,
        `no peering named ${peer}`,
        `establish it (isthmus peering establish), or remove ${peer} from the resolver or sameness group`,
      ),
      skip(replicated, 'no peering'),
    ];
  const state: Check =
    t.peeringState === 'ACTIVE'
      ? pass(active, 'replication stream up')
      : fail(
          active,
          `the peering is ${t.peeringState}`,
          `isthmus troubleshoot peering --name ${peer}`,
        );
  if (!t.bundle)
    return [
      state,
      fail(
        replicated,
        `${peer} has not sent its CA bundle: its ${t.service} cannot be dialed`,
        `isthmus troubleshoot peering --name ${peer}`,
      ),
    ];
  if (!t.meshEndpoints)
    return [
      state,
      fail(
        replicated,
        `${peer} exports no ${t.service} with a sidecar and a healthy mesh gateway to this cluster`,
        `in ${peer}: export ${t.service} to this cluster (exported-services Consumers: Peer or SamenessGroup),\nand run a healthy mesh gateway there`,
      ),
    ];
  return [
    state,
    pass(replicated, `trust bundle and SNI known; ${t.healthy} of ${t.total} instances healthy`),
  ];
}

function acked(f: UpstreamFacts, status: (name: string | undefined) => string): Check {
  const name = 'Envoy ACKed the clusters';
  if (!f.clusters) return skip(name, `${f.proxyId} is not connected over xDS`);
  const names = [
    ...(f.aggregate ? [f.aggregate] : []),
    ...f.targets.flatMap((t) => (t.cluster ? [t.cluster] : [])),
  ];
  if (names.length === 0) return skip(name, 'no target can be built yet');
  const pending = names.filter((n) => status(n) !== 'SYNCED');
  if (pending.length === 0) return pass(name, `${names.length} of ${names.length} SYNCED`);
  return fail(
    name,
    pending.map((n) => `${n} ${status(n)}`).join(', '),
    `isthmus troubleshoot proxy ${f.proxyId} (a NACK says why; NOT_SENT/STALE settle within seconds)`,
  );
}

/** The text `isthmus troubleshoot upstream` prints: the chain, its targets, then the checklist. */
export function renderUpstreamReport(r: UpstreamReport): string {
  const c = r.Chain;
  const lines = [
    `chain: ${c.Service}${c.Resolver ? ` (service-resolver ${c.Service})` : ' (no service-resolver)'}`,
    `  failover: ${c.FailoverFrom || 'none'}`,
    ...(c.Aggregate ? [`  aggregate cluster: ${c.Aggregate}`] : []),
    ...(c.ConnectTimeout ? [`  connect timeout: ${c.ConnectTimeout}`] : []),
    ...(c.RequestTimeout ? [`  request timeout: ${c.RequestTimeout}`] : []),
    'targets, in failover order:',
  ];
  r.Targets.forEach((t, i) => {
    lines.push(`  ${i + 1}. ${t.ID}: ${t.Healthy}/${t.Total} healthy, Envoy ${t.Envoy}`);
    if (t.Cluster) lines.push(`     cluster ${t.Cluster}`, `     SNI ${t.SNI}`);
  });
  if (r.Routes) {
    lines.push('routes (service-router, service-splitter), first match wins:');
    r.Routes.forEach((route, i) => {
      const splits = route.Splits.map((s) => {
        const share = route.Splits.length > 1 ? `${s.Weight}% ` : '';
        const to = !s.TrafficTo
          ? 'no healthy target'
          : s.TrafficTo === s.Target
            ? `${s.Healthy}/${s.Total} healthy`
            : `failed over to ${s.TrafficTo}, ${s.Healthy}/${s.Total} healthy`;
        return `${share}${s.Target} (${to})`;
      });
      lines.push(`  ${i + 1}. ${route.Match || 'every request'} → ${splits.join(', ') || '503'}`);
    });
  }
  const [subject = '', ...checks] = renderChecklist(r).split('\n');
  return [subject, ...lines.map(printable), ...checks].join('\n');
}
