import { trustDomainFix } from '../peering/claims.js';
import {
  type Peering,
  type RejectedImport,
  establishedStates,
  isDialer,
} from '../peering/types.js';
import { type CertFact, certProblem, earliestExpiry } from './certs.js';
import {
  type Check,
  type Checklist,
  checklist,
  fail,
  formatAge,
  formatDuration,
  pass,
  skip,
} from './checklist.js';

/** A mesh gateway of this datacenter as the checks see it. */
export interface GatewayFact {
  readonly id: string;
  readonly health: 'passing' | 'warning' | 'critical';
  /** `host:port` of its `wan` tagged address, when it has one. */
  readonly wan?: string | undefined;
}

/** Everything the peering checklist reads, gathered from live state (see gather.ts). */
export interface PeeringFacts {
  readonly datacenter: string;
  readonly now: number;
  readonly heartbeatTimeoutMs: number;
  readonly peering: Peering;
  /** Services the exported-services entry exports to this peering, sorted. */
  readonly exported: readonly string[];
  /** The exported-services entry exists (the fix then adds to it rather than creating it). */
  readonly exportEntryExists: boolean;
  /** Services imported from the peer, sorted. */
  readonly imported: readonly string[];
  readonly localGateways: readonly GatewayFact[];
  /**
   * Local upstreams to this peer that leave through our own gateway (mode local), as `<proxy> →
   * <service>`.
   */
  readonly localModeUpstreams: readonly string[];
  readonly localRoots: readonly CertFact[];
  readonly peerRoots: readonly CertFact[];
}

/**
 * The peering checklist (issue 6): token used, stream up, heartbeat age, peer CA present, exports,
 * imports, mesh gateway, last NACK, certificates. Checks that need the stream are skipped while the
 * token is unused, so the one root cause is the one ✗.
 */
export function peeringChecklist(f: PeeringFacts): Checklist {
  const p = f.peering;
  const established = establishedStates.has(p.state);
  const checks: Check[] = [
    tokenUsed(f),
    established ? streamUp(f) : skip('stream up', `not applicable while the peering is ${p.state}`),
    established ? heartbeatAge(f) : skip('heartbeat age', 'no stream yet'),
    established
      ? peerCaPresent(f)
      : skip('peer CA present', "the peer's roots arrive when it establishes"),
    exportsNonEmpty(f),
    imports(f),
    meshGateway(f),
    established ? lastNack(f) : skip('last NACK', 'no stream yet'),
    certificatesValid(f),
  ];
  return checklist(
    `Peering ${p.name} (${isDialer(p) ? 'this cluster dials' : 'this cluster accepts'}, ${f.datacenter} ↔ ${p.remote.datacenter || 'unknown peer'})`,
    checks,
  );
}

export function tokenUsed(f: PeeringFacts): Check {
  const p = f.peering;
  const name = 'token used';
  if (p.state === 'PENDING') {
    return fail(
      name,
      `a token was generated for ${p.name} but the peer has not established with it`,
      `on the other cluster run: isthmus peering establish --name ${f.datacenter} --peering-token <TOKEN>\n` +
        `or generate a new token (the unused one stops working): isthmus peering generate-token --name ${p.name}`,
    );
  }
  if (p.state === 'TERMINATED') {
    return fail(
      name,
      'the peer deleted this peering (TERMINATED)',
      `delete it here (isthmus peering delete --name ${p.name}) and peer again with a new token`,
    );
  }
  if (p.state === 'DELETING') {
    return fail(
      name,
      `the peering is being deleted here (since ${p.deletedAt ?? 'now'})`,
      'wait for the peer to be told, then peer again with a new token if you still want it',
    );
  }
  if (isDialer(p))
    return pass(name, `this cluster established with the peer's token (${p.peerServerName})`);
  return pass(
    name,
    `the peer (${p.remote.datacenter || 'unknown'}) established with this cluster's token`,
  );
}

export function streamUp(f: PeeringFacts): Check {
  const p = f.peering;
  const s = p.streamStatus;
  const name = 'stream up';
  if (p.state === 'ACTIVE') {
    const receive = s.lastReceive
      ? `, last receive ${formatAge(f.now - Date.parse(s.lastReceive))} ago`
      : '';
    return pass(name, `ACTIVE${receive}`);
  }
  const why = s.lastError ? `: ${s.lastError}` : '';
  const fix = isDialer(p)
    ? `check that the peer's server is running and reachable from here at ${p.peerServerAddresses.join(', ')} ` +
      `(its peering port, TLS name ${p.peerServerName}); this cluster redials on its own`
    : `this cluster accepts: check that the peer's server (${p.remote.datacenter || 'the dialer'}) is running and reaches ` +
      "this server's peering port (--peering-addr / --advertise-addr, TLS); the peer redials on its own. " +
      `If the peer deleted this peering while this server was down, it never will: delete it here too (isthmus peering delete --name ${p.name})`;
  return fail(name, `${p.state}${why}`, fix);
}

export function heartbeatAge(f: PeeringFacts): Check {
  const s = f.peering.streamStatus;
  const name = 'heartbeat age';
  const timeout = formatDuration(f.heartbeatTimeoutMs);
  const fix =
    `heartbeats come every --peering-heartbeat-ms; the stream is torn down after ${timeout} without one: ` +
    "check that the peer's server is running and the network between the servers";
  if (!s.lastHeartbeat) {
    const receive = s.lastReceive
      ? ` (last message ${formatAge(f.now - Date.parse(s.lastReceive))} ago)`
      : '';
    return fail(name, `no heartbeat received yet${receive}`, fix);
  }
  const age = f.now - Date.parse(s.lastHeartbeat);
  if (age > f.heartbeatTimeoutMs)
    return fail(
      name,
      `last heartbeat ${formatAge(age)} ago, more than the ${timeout} timeout`,
      fix,
    );
  return pass(name, `last heartbeat ${formatAge(age)} ago (timeout ${timeout})`);
}

export function peerCaPresent(f: PeeringFacts): Check {
  const p = f.peering;
  const name = 'peer CA present';
  const fix = isDialer(p)
    ? "the peer's roots come with its token, then over the stream: establish again with a new token from the peer"
    : "the dialer's roots are pinned when it establishes: have the peer establish again with a new token";
  const rejected = latestRejected(p, (r) => r.resource === 'trust-bundle');
  if (rejected)
    return fail(
      name,
      `the peer's trust bundle ${rejected.resourceId} was rejected (the last accepted roots stay in use): ${rejected.reason}`,
      trustDomainFix,
    );
  if (f.peerRoots.length === 0) return fail(name, 'no CA roots of the peer are known', fix);
  const broken = f.peerRoots.find((c) => c.error);
  if (broken) return fail(name, `${broken.label} ${broken.error}`, fix);
  const td = p.peerTrustDomain ? ` of ${p.peerTrustDomain}` : '';
  return pass(name, `${f.peerRoots.length} root${f.peerRoots.length === 1 ? '' : 's'}${td}`);
}

/**
 * A one-way peering (the peer exports, we only import) is healthy: this fails only when nothing
 * flows either way, since such a peering carries no traffic at all.
 */
export function exportsNonEmpty(f: PeeringFacts): Check {
  const name = 'exports non-empty';
  const peer = f.peering.name;
  if (f.exported.length > 0) return pass(name, `exports ${f.exported.join(', ')} to ${peer}`);
  if (f.imported.length > 0)
    return pass(
      name,
      `exports nothing to ${peer}; it is a one-way peering (this cluster imports only)`,
    );
  const entry = JSON.stringify({
    Kind: 'exported-services',
    Name: 'default',
    Services: [{ Name: '<SERVICE>', Consumers: [{ Peer: peer }] }],
  });
  const how = f.exportEntryExists
    ? `add ${peer} to the Consumers of a service in the exported-services entry (isthmus config read exported-services default), then write it back:`
    : 'export a service to it with an exported-services entry:';
  return fail(
    name,
    `nothing is exported to ${peer}, and nothing is imported from it`,
    `${how}\necho '${entry}' | isthmus config write -`,
  );
}

/**
 * What the peer exports to us is the peer's decision, so nothing imported is no failure; what it
 * replicated and we refused (docs/architecture.md §6 "Claims") is.
 */
export function imports(f: PeeringFacts): Check {
  const peer = f.peering.name;
  const rejected = latestRejected(f.peering, (r) => r.resource !== 'trust-bundle');
  if (rejected) {
    const what =
      rejected.resource === 'service' ? `service ${rejected.resourceId}` : rejected.resource;
    return fail(
      'imports',
      `the ${what} that ${peer} replicated was rejected (nothing of it was stored or sent to a proxy): ${rejected.reason}`,
      `the peer's data breaks the rules names, addresses, ports, SNIs and SPIFFE IDs must follow here: fix it on the peer ` +
        `(for a service: its registration or config entries there); the peer replicates it again on its next change, and this clears once accepted`,
    );
  }
  if (f.imported.length > 0)
    return pass('imports', `imports ${f.imported.join(', ')} from ${peer}`);
  return pass(
    'imports',
    `nothing is imported from ${peer} (the peer exports nothing to this cluster)`,
  );
}

export function meshGateway(f: PeeringFacts): Check {
  const name = 'mesh gateway registered';
  const fix =
    'peered traffic enters and leaves through mesh gateways: register one with a wan tagged address, e.g.\n' +
    'echo \'{"Name":"mesh-gateway","Kind":"mesh-gateway","Port":8443,"TaggedAddresses":{"wan":{"Address":"<PUBLIC IP>","Port":443}}}\' | isthmus services register -\n' +
    'and run its Envoy: isthmus envoy bootstrap --gateway mesh --proxy-id mesh-gateway';
  // Our gateway carries what we export (the peer dials it) and local-mode upstreams to the peer.
  const needs = [
    ...(f.exported.length > 0 ? [`the peer reaches ${f.exported.join(', ')} through it`] : []),
    ...(f.localModeUpstreams.length > 0
      ? [`upstreams in mode local leave through it (${f.localModeUpstreams.join(', ')})`]
      : []),
  ];
  if (f.localGateways.length === 0 && needs.length === 0) {
    return pass(
      name,
      `none registered, none needed: nothing is exported to ${f.peering.name} and upstreams to it use mode remote`,
    );
  }
  if (f.localGateways.length === 0)
    return fail(
      name,
      `no mesh gateway is registered in ${f.datacenter}, but ${needs.join('; ')}`,
      fix,
    );
  const usable = f.localGateways.filter((g) => g.health !== 'critical');
  if (usable.length === 0)
    return fail(
      name,
      `every mesh gateway of ${f.datacenter} is critical: ${f.localGateways.map((g) => g.id).join(', ')}`,
      `make a gateway's health checks pass; ${fix}`,
    );
  return pass(
    name,
    usable
      .map(
        (g) =>
          `${g.id} (${g.wan ? `wan ${g.wan}` : 'no wan address: peers get its LAN address'}, ${g.health})`,
      )
      .join('; '),
  );
}

/** The most recent of the peer's refused imports that `which` selects. */
function latestRejected(
  p: Peering,
  which: (r: RejectedImport) => boolean,
): RejectedImport | undefined {
  return [...(p.streamStatus.rejectedImports ?? [])].reverse().find(which);
}

export function lastNack(f: PeeringFacts): Check {
  const nack = f.peering.streamStatus.lastNack;
  if (!nack) return pass('last NACK', 'none');
  return fail(
    'last NACK',
    `the peer rejected what this cluster replicated: ${nack}`,
    "the peer's server log says why; fix the exported service it names (its registration or config entries): it is replicated again on the next change",
  );
}

export function certificatesValid(f: PeeringFacts): Check {
  const name = 'certificates valid';
  // A peer root that does not parse is the peer CA check's failure, not this one's.
  const peerParsed = f.peerRoots.filter((c) => !c.error);
  const problems = [...f.localRoots, ...peerParsed]
    .map((c) => certProblem(c, f.now))
    .filter((x) => x !== undefined);
  if (f.localRoots.length === 0) problems.unshift('this cluster has no CA roots');
  if (problems.length > 0) {
    return fail(
      name,
      problems.join('; '),
      "this cluster's roots: check `isthmus ca roots` and rotate with `isthmus ca rotate`; the peer's: they are replicated when the peer rotates, else establish again with a new token",
    );
  }
  const local = earliestExpiry(f.localRoots);
  const peer = earliestExpiry(f.peerRoots);
  return pass(name, `local roots valid until ${local}${peer ? `, peer roots until ${peer}` : ''}`);
}
