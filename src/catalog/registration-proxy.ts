import { isIP } from 'node:net';
import type { MeshGatewayMode, ProxyConfig, Upstream } from './types.js';
import {
  type JsonObject,
  type Problems,
  at,
  checkString,
  idRule,
  nameRule,
  readArray,
  readInt,
  readObject,
  readOptionalObject,
  readString,
  readEnum,
} from './input.js';

/** The `Proxy` block of a connect-proxy registration and of `Connect.SidecarService`. */

export const meshGatewayModes: readonly MeshGatewayMode[] = ['', 'none', 'local', 'remote'];
const defaultLocalAddress = '127.0.0.1';

const upstreamFields = [
  'DestinationType',
  'DestinationName',
  'DestinationNamespace',
  'DestinationPartition',
  'DestinationPeer',
  'Datacenter',
  'LocalBindAddress',
  'LocalBindPort',
  'MeshGateway',
  'Config',
];
const configUnsupported =
  'not supported: set the protocol in a service-defaults or proxy-defaults config entry';

export interface ProxyRules {
  /** connect-proxy registrations name their destination; sidecars get it from their service. */
  readonly destination: 'required' | 'from-service';
  /** The service's port for a sidecar (LocalServicePort's default); none for connect-proxy. */
  readonly defaultLocalServicePort?: number;
  readonly service?: { readonly id: string; readonly name: string };
  /** The datacenter of the proxy: an upstream with no `Datacenter` targets it. */
  readonly datacenter: string;
  /**
   * Where the proxy's own public listener binds, when the registration says: `Address` and `Port`
   * of a connect-proxy, or of a sidecar with an explicit `Port`.
   */
  readonly publicListener?: { readonly address: string; readonly port: number } | undefined;
}

/** `{Mode}`; absent → mode "". */
export function readMeshGateway(
  obj: JsonObject,
  base: string,
  p: Problems,
): { mode: MeshGatewayMode } {
  const mg = readOptionalObject(obj, 'MeshGateway', base, ['Mode'], p);
  return {
    mode: (mg && readEnum(mg, 'Mode', at(base, 'MeshGateway'), p, meshGatewayModes, '')) ?? '',
  };
}

/** An IP address (listeners and static clusters need one, not a hostname). */
export function readIp(
  obj: JsonObject,
  key: string,
  base: string,
  p: Problems,
  fallback?: string,
): string | undefined {
  const field = at(base, key);
  const value = obj[key];
  if (value === undefined || value === null || value === '') {
    return fallback !== undefined ? fallback : p.add(field, 'required (an IP address)');
  }
  const s = checkString(value, field, p);
  if (s === undefined) return undefined;
  return isIP(s) !== 0 ? s : p.add(field, `${JSON.stringify(s)} is not an IP address`);
}

export function parseProxy(
  value: unknown,
  base: string,
  rules: ProxyRules,
  p: Problems,
): ProxyConfig | undefined {
  const destFields = ['DestinationServiceName', 'DestinationServiceID'];
  const common = ['LocalServiceAddress', 'LocalServicePort', 'Upstreams', 'MeshGateway', 'Config'];
  // Sidecars get their destination from the service: those keys get their own message below.
  const obj = readObject(value ?? {}, base, [...common, ...destFields], p);
  if (!obj) return undefined;
  if (obj.Config !== undefined) p.add(at(base, 'Config'), configUnsupported);
  const dest = readDestination(obj, base, rules, p);
  const localServiceAddress = readIp(obj, 'LocalServiceAddress', base, p, defaultLocalAddress);
  const localServicePort = readInt(
    obj,
    'LocalServicePort',
    base,
    p,
    1,
    65535,
    rules.defaultLocalServicePort || undefined,
  );
  const upstreams = readArray(obj, 'Upstreams', base, p, (v, f) => parseUpstream(v, f, p), 4096);
  checkBindConflicts(upstreams, rules.publicListener, p);
  checkDuplicateDestinations(upstreams, rules.datacenter, p);
  const meshGateway = readMeshGateway(obj, base, p);
  if (!dest || localServiceAddress === undefined || localServicePort === undefined)
    return undefined;
  return {
    ...dest,
    localServiceAddress,
    localServicePort,
    upstreams: upstreams.map((u) => u.upstream),
    meshGateway,
  };
}

function readDestination(
  obj: JsonObject,
  base: string,
  rules: ProxyRules,
  p: Problems,
): { destinationServiceName: string; destinationServiceId: string } | undefined {
  if (rules.destination === 'from-service') {
    for (const key of ['DestinationServiceName', 'DestinationServiceID']) {
      if (obj[key] !== undefined)
        p.add(
          at(base, key),
          'not allowed in Connect.SidecarService: the sidecar always fronts its service; remove it',
        );
    }
    return (
      rules.service && {
        destinationServiceName: rules.service.name,
        destinationServiceId: rules.service.id,
      }
    );
  }
  const destinationServiceName = readString(
    obj,
    'DestinationServiceName',
    base,
    p,
    undefined,
    nameRule,
  );
  const destinationServiceId = readString(obj, 'DestinationServiceID', base, p, '', idRule);
  if (destinationServiceName === undefined || destinationServiceId === undefined) return undefined;
  return { destinationServiceName, destinationServiceId };
}

interface ParsedUpstream {
  readonly upstream: Upstream;
  readonly field: string;
}

function parseUpstream(value: unknown, field: string, p: Problems): ParsedUpstream | undefined {
  const obj = readObject(value, field, upstreamFields, p);
  if (!obj) return undefined;
  if (obj.Config !== undefined) p.add(at(field, 'Config'), configUnsupported);
  if (
    obj.DestinationType !== undefined &&
    obj.DestinationType !== 'service' &&
    obj.DestinationType !== ''
  ) {
    p.add(at(field, 'DestinationType'), 'must be "service" (prepared queries are not supported)');
  }
  const destinationName = readString(obj, 'DestinationName', field, p, undefined, nameRule);
  const destinationNamespace = readString(
    obj,
    'DestinationNamespace',
    field,
    p,
    'default',
    nameRule,
  );
  const destinationPartition = readString(
    obj,
    'DestinationPartition',
    field,
    p,
    'default',
    nameRule,
  );
  const destinationPeer = readString(obj, 'DestinationPeer', field, p, '', nameRule);
  const datacenter = readString(obj, 'Datacenter', field, p, '', nameRule);
  if (destinationPeer && obj.DestinationPartition)
    p.add(
      at(field, 'DestinationPartition'),
      "must be empty when DestinationPeer is set (a peer upstream lives in the peer's exported partition)",
    );
  if (destinationPeer && datacenter)
    p.add(
      at(field, 'Datacenter'),
      'must be empty when DestinationPeer is set (peers and datacenters are alternatives)',
    );
  const localBindAddress = readIp(obj, 'LocalBindAddress', field, p, defaultLocalAddress);
  const localBindPort = readInt(obj, 'LocalBindPort', field, p, 1, 65535);
  const meshGateway = readMeshGateway(obj, field, p);
  if (
    destinationName === undefined ||
    destinationNamespace === undefined ||
    destinationPartition === undefined
  )
    return undefined;
  if (
    destinationPeer === undefined ||
    datacenter === undefined ||
    localBindAddress === undefined ||
    localBindPort === undefined
  )
    return undefined;
  const upstream = {
    destinationName,
    destinationNamespace,
    destinationPartition,
    destinationPeer,
    datacenter,
    localBindAddress,
    localBindPort,
    meshGateway,
  };
  return { upstream, field };
}

/**
 * No two listeners of one proxy on the same address and port: Envoy refuses the second ("has
 * duplicate address ... as existing listener") and NACKs the whole listener update.
 */
function checkBindConflicts(
  upstreams: readonly ParsedUpstream[],
  own: ProxyRules['publicListener'],
  p: Problems,
): void {
  const seen = new Map<string, string>();
  for (const { upstream, field } of upstreams) {
    const key = `${upstream.localBindAddress}:${upstream.localBindPort}`;
    const first = seen.get(key);
    if (own && upstream.localBindAddress === own.address && upstream.localBindPort === own.port) {
      p.add(
        at(field, 'LocalBindPort'),
        `${key} is the proxy's own public listener (its Address and Port); give the upstream another LocalBindPort`,
      );
    } else if (first !== undefined)
      p.add(
        at(field, 'LocalBindPort'),
        `${key} is already used by ${first}; each upstream needs its own LocalBindAddress:LocalBindPort`,
      );
    else seen.set(key, field);
  }
}

/**
 * One upstream per destination, as in Consul (`upstreams cannot contain duplicates`): both would
 * get the same cluster (named by the destination), and a proxy cannot hold two clusters of one
 * name, so its config could never be built. An upstream without `Datacenter` targets the proxy's.
 */
function checkDuplicateDestinations(
  upstreams: readonly ParsedUpstream[],
  datacenter: string,
  p: Problems,
): void {
  const seen = new Map<string, string>();
  for (const { upstream: u, field } of upstreams) {
    const where = u.destinationPeer
      ? `peer ${u.destinationPeer}`
      : `datacenter ${u.datacenter || datacenter}`;
    const key = `${u.destinationName} (namespace ${u.destinationNamespace}, partition ${u.destinationPartition}, ${where})`;
    const first = seen.get(key);
    if (first !== undefined)
      p.add(
        at(field, 'DestinationName'),
        `${key} is already the destination of ${first}; one upstream per destination`,
      );
    else seen.set(key, field);
  }
}
