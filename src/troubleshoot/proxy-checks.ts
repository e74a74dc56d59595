import type { MeshGatewayMode, ServiceKind } from '../catalog/types.js';
import type { PeeringState } from '../peering/types.js';
import { type CertFact, certProblem } from './certs.js';
import { type Check, type Checklist, checklist, fail, formatAge, pass, skip } from './checklist.js';
import type { GatewayFact } from './peering-checks.js';

export type XdsShortType = 'CDS' | 'LDS' | 'EDS' | 'RDS' | 'SDS';
/** The order the checklist shows the types in (the order an operator reads a proxy's config). */
export const checkedTypes: readonly XdsShortType[] = ['CDS', 'LDS', 'EDS', 'RDS', 'SDS'];

export interface ResourceFact {
  readonly name: string;
  /**
   * The xDS status (src/xds/status.ts), or NOT_REQUESTED: in the proxy's view but never subscribed
   * to (a secret no cluster or listener names), which Envoy is not missing.
   */
  readonly status: 'SYNCED' | 'NOT_SENT' | 'STALE' | 'ERROR' | 'NOT_REQUESTED';
}

export interface NackFact {
  readonly type: XdsShortType;
  readonly message: string;
  /** The resources of that type the proxy currently rejects (status ERROR). */
  readonly resources: readonly string[];
  readonly at: string;
}

/** An open xDS stream of the proxy (the newest when there are several). */
export interface SessionFact {
  readonly api: 'sotw' | 'delta';
  readonly connectedAt: string;
  readonly resources: Readonly<Record<XdsShortType, readonly ResourceFact[]>>;
  /** The newest NACK of each type (whether or not it still applies). */
  readonly nacks: readonly NackFact[];
  /** The leaf certificate in the proxy's current view, when one is pushed. */
  readonly leaf?: CertFact | undefined;
  /** Names of the validation-context secrets (`roots:local`, `roots:peer:<peer>`) in the view. */
  readonly rootsSecrets: readonly string[];
}

export interface UpstreamFact {
  readonly service: string;
  readonly peer: string;
  /** The datacenter asked for ('' = local). */
  readonly datacenter: string;
  readonly gatewayMode: MeshGatewayMode;
  /** DestinationPeer: the peering's state, or undefined when no such peering exists. */
  readonly peeringState?: PeeringState | undefined;
  /** DestinationPeer: the service is imported from the peer, and with mesh (gateway) endpoints. */
  readonly imported: boolean;
  readonly importedWithMesh: boolean;
  /** Mesh gateways registered for the upstream's remote datacenter. */
  readonly remoteGateways: number;
}

export interface ProxyFacts {
  readonly id: string;
  readonly datacenter: string;
  readonly now: number;
  /** The catalog instance with this ID (undefined when none). */
  readonly instance?:
    | { readonly kind: ServiceKind; readonly name: string; readonly destination: string }
    | undefined;
  readonly session?: SessionFact | undefined;
  readonly upstreams: readonly UpstreamFact[];
  readonly localGateways: readonly GatewayFact[];
}

/**
 * The proxy checklist (issue 6): registered, connected, each xDS type synced, last NACK,
 * certificates, and for each upstream that crosses a peering or a datacenter what it depends on.
 */
export function proxyChecklist(f: ProxyFacts): Checklist {
  const s = f.session;
  const checks: Check[] = [
    registered(f),
    connected(f),
    ...checkedTypes.map((t) => (s ? typeSynced(f, t, s) : skip(`${t} synced`, 'not connected'))),
    s ? lastNack(f, s) : skip('last NACK', 'not connected'),
    s ? certificatesValid(f, s) : skip('certificates valid', 'not connected'),
    ...f.upstreams.flatMap((u) => upstreamChecks(f, u)),
  ];
  const what = f.instance
    ? `${f.instance.kind}${f.instance.destination ? ` for ${f.instance.destination}` : ''}, `
    : '';
  return checklist(`Proxy ${f.id} (${what}${f.datacenter})`, checks);
}

export function registered(f: ProxyFacts): Check {
  const name = 'registered as a proxy';
  const fix = `register it as a sidecar (Connect.SidecarService in its service's registration) or as Kind "mesh-gateway": isthmus services register <FILE>`;
  const i = f.instance;
  if (!i) return fail(name, `no service instance with ID ${f.id} is registered`, fix);
  if (i.kind === 'typical') {
    return fail(
      name,
      `${f.id} is a typical service, not a proxy`,
      `troubleshoot its sidecar (usually ${f.id}-sidecar-proxy); ${fix}`,
    );
  }
  return pass(
    name,
    i.kind === 'connect-proxy'
      ? `connect-proxy for ${i.destination}`
      : `${i.kind}, service ${i.name}`,
  );
}

export function connected(f: ProxyFacts): Check {
  const name = 'connected over xDS';
  const s = f.session;
  if (s)
    return pass(
      name,
      `${s.api === 'delta' ? 'Delta' : 'SotW'} ADS stream open for ${formatAge(f.now - Date.parse(s.connectedAt))}`,
    );
  // A typical service has no Envoy of its own (its sidecar does): one ✗ above says so.
  if (f.instance?.kind === 'typical')
    return skip(name, `${f.id} is not a proxy, so no Envoy connects as it`);
  const gateway = f.instance?.kind === 'mesh-gateway' ? ' --gateway mesh' : '';
  return fail(
    name,
    `no xDS stream with node.id ${f.id}`,
    `start its Envoy with a bootstrap for it: isthmus envoy bootstrap${gateway} --proxy-id ${f.id} --token <TOKEN> ` +
      `(a token from: isthmus acl token create --proxy-id ${f.id}); check that Envoy reaches this server's --xds-addr and the token is this proxy's`,
  );
}

export function typeSynced(f: ProxyFacts, type: XdsShortType, s: SessionFact): Check {
  const name = `${type} synced`;
  const unrequested = s.resources[type]
    .filter((r) => r.status === 'NOT_REQUESTED')
    .map((r) => r.name);
  const all = s.resources[type].filter((r) => r.status !== 'NOT_REQUESTED');
  const aside =
    unrequested.length > 0 ? ` (not requested by Envoy: ${unrequested.join(', ')})` : '';
  if (all.length === 0) return pass(name, `nothing to send${aside}`);
  const behind = all.filter((r) => r.status !== 'SYNCED');
  if (behind.length === 0)
    return pass(name, `${all.length} resource${all.length === 1 ? '' : 's'} ACKed${aside}`);
  const list = behind.map((r) => `${r.name} (${r.status})`).join(', ');
  const fixes: string[] = [];
  if (behind.some((r) => r.status === 'ERROR'))
    fixes.push('ERROR: Envoy rejected it (see last NACK)');
  if (behind.some((r) => r.status === 'NOT_SENT'))
    fixes.push(
      'NOT_SENT: not sent yet (Envoy has not subscribed to it, or an earlier response is not ACKed)',
    );
  if (behind.some((r) => r.status === 'STALE'))
    fixes.push('STALE: sent but not ACKed, or Envoy holds a version that is no longer wanted');
  return fail(
    name,
    `${behind.length} of ${all.length} not synced: ${list}`,
    `${fixes.join('; ')}; compare with what the server wants: isthmus proxy-config ${f.id} ${type.toLowerCase()}`,
  );
}

export function lastNack(f: ProxyFacts, s: SessionFact): Check {
  const name = 'last NACK';
  const nacks = [...s.nacks].sort((a, b) => (a.at < b.at ? 1 : -1));
  const current = nacks.find((n) => n.resources.length > 0);
  if (current) {
    return fail(
      name,
      `Envoy rejected ${current.type} ${current.resources.join(', ')}: ${current.message}`,
      `see what was sent: isthmus proxy-config ${f.id} ${current.type.toLowerCase()}; the server does not re-send the same content, ` +
        'so fix the registration or config entry it comes from (or Envoy, if it is too old for it)',
    );
  }
  const newest = nacks[0];
  return pass(
    name,
    newest
      ? `none outstanding (an earlier ${newest.type} NACK is resolved: ${newest.message})`
      : 'none',
  );
}

export function certificatesValid(f: ProxyFacts, s: SessionFact): Check {
  const name = 'certificates valid';
  const gateway = f.instance?.kind === 'mesh-gateway';
  if (!s.leaf) {
    if (gateway) return skip(name, 'no certificate pushed (this gateway passes TLS through)');
    return fail(
      name,
      "no leaf certificate in the proxy's config",
      "the server issues one with the proxy's snapshot: check the server log for CA or snapshot errors",
    );
  }
  const problem = certProblem(s.leaf, f.now);
  const fix =
    'leaves are renewed before they expire and re-issued after a CA rotation; if this persists check `isthmus ca roots` and the server log';
  if (problem) return fail(name, problem, fix);
  if (!s.rootsSecrets.includes('roots:local'))
    return fail(name, "the local CA roots (roots:local) are not in the proxy's config", fix);
  return pass(
    name,
    `leaf ${s.leaf.identity} valid until ${s.leaf.notAfter}, signed by a current root; roots pushed: ${s.rootsSecrets.join(', ')}`,
  );
}

function upstreamChecks(f: ProxyFacts, u: UpstreamFact): Check[] {
  const out: Check[] = [];
  if (u.peer) out.push(peeredUpstream(f, u));
  const remoteDc = u.datacenter !== '' && u.datacenter !== f.datacenter;
  if (u.gatewayMode === 'local' || (remoteDc && !u.peer)) out.push(upstreamGateway(f, u, remoteDc));
  return out;
}

export function peeredUpstream(f: ProxyFacts, u: UpstreamFact): Check {
  const name = `upstream ${u.service} (peer ${u.peer})`;
  if (!u.peeringState) {
    return fail(
      name,
      `no peering named ${u.peer}`,
      `establish it (isthmus peering establish --name ${u.peer} --peering-token <TOKEN from the peer>), or fix the upstream's DestinationPeer (see isthmus peering list)`,
    );
  }
  if (u.peeringState !== 'ACTIVE') {
    return fail(
      name,
      `peering ${u.peer} is ${u.peeringState}`,
      `isthmus troubleshoot peering --name ${u.peer}`,
    );
  }
  if (!u.imported) {
    return fail(
      name,
      `${u.service} is not imported from ${u.peer}`,
      `on the peer, export ${u.service} to this cluster: add it with this cluster's name as a consumer to its exported-services entry (isthmus config write); ` +
        `then isthmus peering read --name ${u.peer} lists it under Imported services`,
    );
  }
  if (!u.importedWithMesh) {
    return fail(
      name,
      `${u.service} is imported from ${u.peer} without mesh endpoints`,
      `on the peer, ${u.service} needs a Connect sidecar and the peer needs a mesh gateway`,
    );
  }
  const bundle = `roots:peer:${u.peer}`;
  if (f.session && !f.session.rootsSecrets.includes(bundle)) {
    return fail(
      name,
      `the peer's CA bundle (${bundle}) is not in the proxy's config`,
      `it arrives over the peering stream: isthmus troubleshoot peering --name ${u.peer}`,
    );
  }
  return pass(
    name,
    `imported from ${u.peer} (ACTIVE)${f.session ? `, peer CA bundle ${bundle} pushed` : ''}`,
  );
}

export function upstreamGateway(f: ProxyFacts, u: UpstreamFact, remoteDc: boolean): Check {
  const target = u.peer ? `peer ${u.peer}` : `dc ${u.datacenter || f.datacenter}`;
  const name = `mesh gateway for upstream ${u.service} (${target})`;
  if (u.gatewayMode === 'local') {
    const usable = f.localGateways.filter((g) => g.health !== 'critical');
    if (usable.length > 0)
      return pass(name, `mode local through ${usable.map((g) => g.id).join(', ')}`);
    return fail(
      name,
      `mode local, but no healthy mesh gateway is registered in ${f.datacenter}`,
      'register a mesh gateway in this datacenter (Kind "mesh-gateway", with a wan tagged address) and run its Envoy, or use mode remote',
    );
  }
  if (remoteDc && u.remoteGateways === 0) {
    return fail(
      name,
      `no mesh gateway of ${u.datacenter} is known`,
      `register ${u.datacenter}'s mesh gateways here (Kind "mesh-gateway", Datacenter "${u.datacenter}", wan tagged address), or use mode local`,
    );
  }
  return pass(
    name,
    `mode remote through ${u.remoteGateways} gateway${u.remoteGateways === 1 ? '' : 's'} of ${u.datacenter}`,
  );
}
