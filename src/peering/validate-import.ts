import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { healthStatuses } from '../catalog/checks.js';
import { protocols } from '../catalog/config-entries.js';
import { at, type JsonObject, readMeta } from '../catalog/input.js';
import { dnsHostname, dnsLabel } from '../dns-names.js';
import type {
  ExportedService,
  ExportedServiceList,
  PeerMeta,
  ServerAddresses,
  ServiceInstance,
  ServiceName,
  TrustBundle,
} from '../gen/isthmus/peering/v1/peering.js';
import { type FieldError, Problems } from '../problems.js';
import { maxResourceBytes } from './stream/messages.js';
import {
  type ClaimContext,
  rootsCertify,
  trustDomainHolder,
  trustDomainProblems,
} from './claims.js';

/**
 * Everything a peer replicates is checked on arrival, before it is stored or can reach a proxy
 * (issue 18; docs/architecture.md §6 "Claims"): against the rules our own names impose (services,
 * namespaces and partitions are DNS labels, instance IDs are Envoy node IDs), the rules Envoy
 * imposes (socket addresses, ports, SNI hostnames, SPIFFE IDs, protocols), and the peer's own word
 * (SNIs and SPIFFE IDs inside the trust domain it claimed). Each validator collects every problem
 * with its field path (`instances[2].peer_meta.sni[0]`); an empty list means the resource is
 * usable.
 */

/**
 * Bounds on what one peer may replicate. A message is at most `maxMessageBytes` (1 MiB, the peering
 * port's gRPC receive limit); a bigger resource arrives in chunks, up to `resourceBytes` in all.
 */
export const importLimits = {
  /** Encoded size of one replicated resource (its `Any.value`, chunks assembled). */
  resourceBytes: maxResourceBytes,
  /** Roots in one trust bundle (the same bound as ExchangeSecret's dialer roots). */
  bundleRoots: 16,
  /** Services in the exported-services list. */
  services: 5_000,
  /** Instances of one exported service (about 8 MiB encoded at 150 bytes each). */
  instances: 50_000,
  /** SNIs and SPIFFE IDs in one instance's PeerMeta. */
  peerMetaEntries: 16,
  /** Addresses in ServerAddresses. */
  serverAddresses: 16,
} as const;

const nameText =
  '1-63 lowercase letters, digits or "-", starting and ending with a letter or digit';
/** Instance names: a service name, or `<service>-sidecar-proxy` (longer than one label may be). */
const instanceName = /^[a-z0-9]([a-z0-9-]{0,126}[a-z0-9])?$/;
/**
 * Instance IDs: the catalog's rule (Envoy node IDs, no "/" or spaces), but up to 512 characters:
 * a synthetic sidecar's is `<svc>-sidecar-proxy:<gateway WAN host>:<port>`, and a host may be long.
 */
const instanceId = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,511}$/;
/** A SPIFFE ID path: `/`-separated segments of letters, digits, ".", "-", "_" (no "." or ".."). */
const spiffePath = /^(\/(?!\.{1,2}(\/|$))[A-Za-z0-9._-]+)+$/;

/** A peer's string shown in an error: quoted and cut short (a NACK message stays small). */
const show = (s: string) => JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);

/**
 * A replicated trust bundle: a well-formed trust domain equal to its resource ID, 1-16 PEM CA
 * roots that each certify exactly that trust domain, and (with `claims`) the claims checks: not
 * ours, not another live peer's, and the one the peer claimed when the peering was established.
 */
export function validateTrustBundle(
  bundle: TrustBundle,
  claims?: ClaimContext & { readonly resourceId: string; readonly pinned: string },
): FieldError[] {
  const problems: FieldError[] = [];
  const td = bundle.trustDomain;
  if (!td) problems.push({ field: 'trust_domain', problem: 'missing' });
  else if (claims) {
    if (claims.resourceId !== td)
      problems.push({
        field: 'resource_id',
        problem: `${show(claims.resourceId)} differs from the bundle's trust domain ${show(td)}`,
      });
    problems.push(...bundleClaimProblems(td, bundle.rootPems, claims));
  }
  if (bundle.rootPems.length === 0)
    problems.push({ field: 'root_pems', problem: 'a trust bundle needs at least one root' });
  if (bundle.rootPems.length > importLimits.bundleRoots)
    problems.push({ field: 'root_pems', problem: `more than ${importLimits.bundleRoots} roots` });
  bundle.rootPems.slice(0, importLimits.bundleRoots).forEach((pem, i) => {
    if (!isCaPem(pem))
      problems.push({ field: `root_pems[${i}]`, problem: 'not a PEM CA certificate' });
  });
  if (td && problems.length === 0) problems.push(...rootsCertify(td, bundle.rootPems, 'root_pems'));
  return problems;
}

/**
 * The trust domain a peer established a peering with is the one it keeps: a bundle for another is
 * refused (naming the peering that holds it, if one does). It was checked against ours and every
 * other peer's at establish; checking that again here would refuse a rotation that reaches one of
 * two peerings with the same cluster before the other.
 */
function bundleClaimProblems(
  td: string,
  roots: readonly string[],
  claims: ClaimContext & { readonly pinned: string },
): FieldError[] {
  if (!claims.pinned) return trustDomainProblems(td, 'trust_domain', claims, roots);
  if (td === claims.pinned) return [];
  const own = td === claims.ownTrustDomain ? " (this cluster's own)" : '';
  const holder = trustDomainHolder(td, claims);
  const held = holder ? ` (the trust domain of peering ${JSON.stringify(holder.name)})` : '';
  return [
    {
      field: 'trust_domain',
      problem: `the peer established this peering as ${claims.pinned}, not ${show(td)}${own}${held}`,
    },
  ];
}

function isCaPem(pem: string): boolean {
  try {
    return new X509Certificate(pem).ca;
  } catch {
    return false;
  }
}

/** The list of exported services: at most 5,000 distinct, well-formed service names. */
export function validateExportedServiceList(list: ExportedServiceList): FieldError[] {
  const p = new Problems();
  if (list.services.length > importLimits.services)
    return p.add('services', `more than ${importLimits.services} services`) ?? p.list;
  const seen = new Set<string>();
  list.services.forEach((s, i) => {
    const field = at('services', i);
    checkServiceName(s, field, p);
    if (seen.has(s.name)) p.add(at(field, 'name'), `${show(s.name)} is listed twice`);
    seen.add(s.name);
  });
  return p.list;
}

/**
 * One exported service (resource ID = its name), with every instance: the rules our catalog
 * imposes on a registration, and for each synthetic sidecar a PeerMeta inside the peer's trust
 * domain `peerTrustDomain` (unchecked while it is unknown).
 */
export function validateExportedService(
  resourceId: string,
  service: ExportedService,
  peerTrustDomain: string,
): FieldError[] {
  const p = new Problems();
  const name = service.service?.name ?? '';
  if (!service.service) p.add('service', 'missing');
  else checkServiceName(service.service, 'service', p);
  if (resourceId !== name)
    p.add('resource_id', `${show(resourceId)} differs from the service name ${show(name)}`);
  if (service.instances.length > importLimits.instances)
    return p.add('instances', `more than ${importLimits.instances} instances`) ?? p.list;
  const ids = new Set<string>();
  service.instances.forEach((instance, i) => {
    const field = at('instances', i);
    checkInstance(instance, field, name, peerTrustDomain, p);
    if (ids.has(instance.id)) p.add(at(field, 'id'), `${show(instance.id)} appears twice`);
    ids.add(instance.id);
  });
  return p.list;
}

/** A patch's removed instance IDs: at most as many as a service has, each an instance ID. */
export function validateRemovedIds(service: ExportedService): FieldError[] {
  const p = new Problems();
  const removed = service.patch?.removedInstanceIds ?? [];
  const field = 'patch.removed_instance_ids';
  if (removed.length > importLimits.instances)
    return p.add(field, `more than ${importLimits.instances} IDs`) ?? p.list;
  removed.forEach((id, i) => {
    if (!instanceId.test(id)) p.add(at(field, i), `${show(id)} is not an instance ID`);
  });
  return p.list;
}

/** The acceptor's peering addresses: 1-16 `host:port` with an IP or hostname and a port 1-65535. */
export function validateServerAddresses(addresses: ServerAddresses): FieldError[] {
  const p = new Problems();
  if (addresses.addresses.length > importLimits.serverAddresses)
    return p.add('addresses', `more than ${importLimits.serverAddresses} addresses`) ?? p.list;
  addresses.addresses.forEach((a, i) => {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(a);
    const host = m?.[1] ?? m?.[2] ?? '';
    const hostOk = m?.[1] !== undefined ? isIP(host) === 6 : isIP(host) === 4 || isHostname(host);
    if (!m || !hostOk || !isPort(Number(m[3]), 1))
      p.add(at('addresses', i), `${show(a)} is not host:port (an IP or hostname, port 1-65535)`);
  });
  return p.list;
}

function checkServiceName(s: ServiceName, field: string, p: Problems): void {
  if (!dnsLabel.test(s.name))
    p.add(at(field, 'name'), `${show(s.name)} is not allowed: ${nameText}`);
  for (const key of ['namespace', 'partition'] as const)
    if (s[key] !== '' && !dnsLabel.test(s[key]))
      p.add(at(field, key), `${show(s[key])} is not allowed: ${nameText}`);
}

function checkInstance(
  i: ServiceInstance,
  field: string,
  service: string,
  peerTd: string,
  p: Problems,
): void {
  if (!instanceId.test(i.id))
    p.add(
      at(field, 'id'),
      `${show(i.id)}: 1-512 letters, digits, ".", "_", ":" or "-", starting with a letter or digit`,
    );
  if (!instanceName.test(i.name))
    p.add(
      at(field, 'name'),
      `${show(i.name)} is not allowed: 1-128 lowercase letters, digits or "-"`,
    );
  // A typical instance registered without an address has '' (the catalog's rule); a sidecar's
  // address becomes an Envoy endpoint, so it needs one.
  if (!isAddress(i.address) && !(i.kind === 'typical' && i.address === ''))
    p.add(at(field, 'address'), `${show(i.address)} is not an IP address or hostname`);
  if (!(healthStatuses as readonly string[]).includes(i.health))
    p.add(at(field, 'health'), `${show(i.health)}: must be one of ${healthStatuses.join(', ')}`);
  readMeta(i as unknown as JsonObject, 'meta', field, p);
  if (i.kind === 'typical') {
    if (i.name !== service) p.add(at(field, 'name'), `must be the service name ${show(service)}`);
    if (!isPort(i.port, 0)) p.add(at(field, 'port'), `${i.port}: must be 0-65535`);
    if (i.peerMeta) p.add(at(field, 'peer_meta'), 'only a connect-proxy instance has one');
  } else if (i.kind === 'connect-proxy') {
    if (i.destinationServiceName !== service)
      p.add(at(field, 'destination_service_name'), `must be the service name ${show(service)}`);
    if (!isPort(i.port, 1)) p.add(at(field, 'port'), `${i.port}: must be 1-65535`);
    if (!i.peerMeta) p.add(at(field, 'peer_meta'), 'missing: a connect-proxy instance needs one');
    else checkPeerMeta(i.peerMeta, at(field, 'peer_meta'), service, peerTd, p);
  } else p.add(at(field, 'kind'), `${show(i.kind)}: must be typical or connect-proxy`);
}

/**
 * The importer dials a peered service by its PeerMeta as given (it never recomputes them), so each
 * SNI must be the form `peeredServiceSni` gives the exporter
 * (`<svc>.<ns>.<ap>.<peer>.external.<td>`) and each SPIFFE ID must lie inside the peer's trust
 * domain: a peer cannot have our sidecars accept another cluster's identity as its service.
 */
function checkPeerMeta(m: PeerMeta, field: string, service: string, peerTd: string, p: Problems) {
  const max = importLimits.peerMetaEntries;
  const sniForm = new RegExp(
    `^${escapeRegExp(service)}(\\.[a-z0-9-]{1,63}){3}\\.external\\.${peerTd ? escapeRegExp(peerTd) : '.+'}$`,
  );
  if (m.sni.length === 0 || m.sni.length > max)
    p.add(at(field, 'sni'), `must have 1-${max} entries`);
  m.sni.slice(0, max).forEach((sni, k) => {
    if (!dnsHostname.test(sni) || !sniForm.test(sni))
      p.add(
        at(at(field, 'sni'), k),
        `${show(sni)} is not ${service}.<namespace>.<partition>.<peer>.external.${peerTd || '<trust domain>'}`,
      );
  });
  if (m.spiffeId.length === 0 || m.spiffeId.length > max)
    p.add(at(field, 'spiffe_id'), `must have 1-${max} entries`);
  m.spiffeId.slice(0, max).forEach((id, k) => {
    const parsed = /^spiffe:\/\/([^/]+)(\/.*)$/.exec(id);
    const ok = parsed && parsed[2]!.length <= 2048 && spiffePath.test(parsed[2]!);
    if (!ok) p.add(at(at(field, 'spiffe_id'), k), `${show(id)} is not a SPIFFE ID`);
    else if (peerTd && parsed[1] !== peerTd)
      p.add(
        at(at(field, 'spiffe_id'), k),
        `${show(id)} is outside the peer's trust domain ${peerTd}`,
      );
  });
  if (!(protocols as readonly string[]).includes(m.protocol))
    p.add(at(field, 'protocol'), `${show(m.protocol)}: must be one of ${protocols.join(', ')}`);
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function isAddress(s: string): boolean {
  return isIP(s) !== 0 || isHostname(s);
}

function isHostname(s: string): boolean {
  return dnsHostname.test(s);
}

function isPort(n: number, min: number): boolean {
  return Number.isInteger(n) && n >= min && n <= 65535;
}
