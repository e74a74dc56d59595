import { isIP } from 'node:net';
import type { ServiceAddress, ServiceInstance, ServiceKind } from './types.js';
import { type CheckDraft, aliasCheckDraft, parseChecks } from './checks.js';
import {
  type JsonObject,
  type Parsed,
  Problems,
  at,
  checkString,
  idRule,
  nameRule,
  readAddress,
  readArray,
  readEnum,
  readInt,
  readMeta,
  readObject,
  readOptionalObject,
  readString,
} from './input.js';
import { parseGatewayProxy } from './registration-gateway.js';
import { type ProxyRules, parseProxy, readIp } from './registration-proxy.js';

/**
 * Consul's service registration body (`PUT /v1/agent/service/register`), parsed into catalog
 * instances. Stricter than Consul in two ways, both because names and addresses end up in Envoy
 * config: unknown fields are errors (a typo must not be silently ignored), and names are DNS
 * labels.
 */
export type InstanceDraft = Omit<ServiceInstance, 'createIndex' | 'modifyIndex' | 'checks'> & {
  readonly checks: readonly CheckDraft[];
};

export interface Registration {
  readonly service: InstanceDraft;
  /** The sidecar of `Connect.SidecarService`; `port` undefined = pick a free one (21000-21255). */
  readonly sidecar?:
    | { readonly instance: InstanceDraft; readonly port: number | undefined }
    | undefined;
}

export interface RegistrationContext {
  /** This server's datacenter: the default of `Datacenter`. */
  readonly datacenter: string;
}

const registrationFields = [
  'ID',
  'Name',
  'Kind',
  'Address',
  'Port',
  'Tags',
  'Meta',
  'Namespace',
  'Partition',
  'Datacenter',
  'TaggedAddresses',
  'Proxy',
  'Connect',
  'Check',
  'Checks',
];
const sidecarFields = ['Port', 'Address', 'Tags', 'Meta', 'Proxy', 'Check', 'Checks'];
const kinds: Readonly<Record<string, ServiceKind>> = {
  '': 'typical',
  'connect-proxy': 'connect-proxy',
  'mesh-gateway': 'mesh-gateway',
};

export function parseRegistration(input: unknown, ctx: RegistrationContext): Parsed<Registration> {
  const p = new Problems();
  const obj = readObject(input, '', registrationFields, p);
  if (!obj) return p.result<Registration>(undefined);
  const service = parseService(obj, ctx, p);
  const sidecar = service && parseConnect(obj, service, p);
  return p.result(service && { service, sidecar });
}

function parseService(
  obj: JsonObject,
  ctx: RegistrationContext,
  p: Problems,
): InstanceDraft | undefined {
  const name = readString(obj, 'Name', '', p, undefined, nameRule);
  const id = readString(obj, 'ID', '', p, name ?? '', idRule);
  const kind = kinds[readEnum(obj, 'Kind', '', p, Object.keys(kinds), '') ?? ''] ?? 'typical';
  const mesh = kind !== 'typical';
  const address = mesh ? readIp(obj, 'Address', '', p) : readAddress(obj, 'Address', '', p, '');
  const port = readInt(obj, 'Port', '', p, mesh ? 1 : 0, 65535, mesh ? undefined : 0);
  const rest = parseCommon(obj, '', p, kind);
  const datacenter = readString(obj, 'Datacenter', '', p, ctx.datacenter, nameRule);
  if (datacenter !== undefined && datacenter !== ctx.datacenter && kind !== 'mesh-gateway') {
    p.add(
      'Datacenter',
      `must be ${JSON.stringify(ctx.datacenter)} (this server's datacenter): only mesh gateways may be registered for another datacenter`,
    );
  }
  const taggedAddresses = parseTaggedAddresses(obj, p, mesh, kind === 'mesh-gateway');
  const publicListener =
    address !== undefined && port !== undefined ? { address, port } : undefined;
  const proxy =
    kind === 'mesh-gateway'
      ? undefined
      : parseProxyOf(obj, kind, { datacenter: ctx.datacenter, publicListener }, p);
  const gatewayConfig =
    kind === 'mesh-gateway' ? parseGatewayProxy(obj.Proxy, taggedAddresses, p) : undefined;
  const checks = parseChecks(obj, '', { id: id ?? '', name: name ?? '' }, p);
  if (
    name === undefined ||
    id === undefined ||
    address === undefined ||
    port === undefined ||
    datacenter === undefined
  )
    return undefined;
  if (!rest || !taggedAddresses || (kind === 'connect-proxy' && !proxy)) return undefined;
  return {
    id,
    name,
    kind,
    address,
    port,
    ...rest,
    datacenter,
    taggedAddresses,
    proxy,
    ...(gatewayConfig && { gatewayConfig }),
    checks,
  };
}

function parseProxyOf(
  obj: JsonObject,
  kind: ServiceKind,
  where: Pick<ProxyRules, 'datacenter' | 'publicListener'>,
  p: Problems,
): InstanceDraft['proxy'] {
  const value = obj.Proxy;
  if (kind === 'connect-proxy') {
    if (value === undefined || value === null)
      return p.add(
        'Proxy',
        'required for Kind "connect-proxy" (at least Proxy.DestinationServiceName)',
      );
    return parseProxy(value, 'Proxy', { destination: 'required', ...where }, p);
  }
  if (value !== undefined && value !== null) {
    p.add(
      'Proxy',
      `only allowed when Kind is "connect-proxy" or "mesh-gateway" (to give a service a sidecar, use Connect.SidecarService)`,
    );
  }
  return undefined;
}

/**
 * The one reserved Meta key a registration may set: a mesh gateway's `consul-wan-federation`
 * (it exposes its datacenter's servers in WAN federation, docs/architecture.md §6c), as Consul.
 */
const wanFederationMeta = 'consul-wan-federation';

/** Tags, Meta, Namespace, Partition. */
function parseCommon(
  obj: JsonObject,
  base: string,
  p: Problems,
  kind: ServiceKind = 'typical',
): Pick<InstanceDraft, 'tags' | 'meta' | 'namespace' | 'partition'> | undefined {
  const tags = readArray(
    obj,
    'Tags',
    base,
    p,
    (v, f) => checkString(v, f, p, { maxLength: 512 }),
    256,
  );
  const meta = readMeta(obj, 'Meta', base, p, kind === 'mesh-gateway' ? [wanFederationMeta] : []);
  const namespace = readString(obj, 'Namespace', base, p, 'default', nameRule);
  const partition = readString(obj, 'Partition', base, p, 'default', nameRule);
  if (namespace === undefined || partition === undefined) return undefined;
  return { tags, meta, namespace, partition };
}

/**
 * `{lan, wan}`, each `{Address, Port}`; proxies and gateways need IP addresses (they become EDS
 * endpoints), except a mesh gateway's WAN address, which may be a hostname (Consul allows it; the
 * clusters that reach it are STRICT_DNS).
 */
function parseTaggedAddresses(
  obj: JsonObject,
  p: Problems,
  needIp: boolean,
  wanHostname = false,
): InstanceDraft['taggedAddresses'] | undefined {
  const tagged = readOptionalObject(obj, 'TaggedAddresses', '', ['lan', 'wan'], p);
  if (!tagged) return {};
  const one = (key: 'lan' | 'wan'): ServiceAddress | undefined | null => {
    const base = at('TaggedAddresses', key);
    const o = readOptionalObject(tagged, key, 'TaggedAddresses', ['Address', 'Port'], p);
    if (!o) return tagged[key] === undefined || tagged[key] === null ? undefined : null;
    const ipOnly = needIp && !(key === 'wan' && wanHostname);
    const address = ipOnly ? readIp(o, 'Address', base, p) : readAddress(o, 'Address', base, p);
    const port = readInt(o, 'Port', base, p, 1, 65535);
    return address === undefined || port === undefined ? null : { address, port };
  };
  const lan = one('lan');
  const wan = one('wan');
  if (lan === null || wan === null) return undefined;
  return { ...(lan && { lan }), ...(wan && { wan }) };
}

/**
 * `Connect.SidecarService` → the sidecar instance, with Consul's defaults: ID `<id>-sidecar-proxy`,
 * Name `<name>-sidecar-proxy`, the service's address, tags and meta, and a proxy whose destination
 * is the service at 127.0.0.1:<service port>.
 */
function parseConnect(
  obj: JsonObject,
  service: InstanceDraft,
  p: Problems,
): Registration['sidecar'] {
  const connect = readOptionalObject(obj, 'Connect', '', ['SidecarService', 'Native'], p);
  if (!connect) return undefined;
  if (connect.Native !== undefined)
    p.add('Connect.Native', 'not supported: isthmus serves Envoy proxies only');
  const base = 'Connect.SidecarService';
  const sc = readOptionalObject(connect, 'SidecarService', 'Connect', sidecarFields, p);
  if (!sc) return undefined;
  if (service.kind !== 'typical')
    return p.add(base, 'only a typical service (Kind "") can have a sidecar');
  const id = `${service.id}-sidecar-proxy`;
  const name = `${service.name}-sidecar-proxy`;
  // Consul falls back to the service's address, then the agent's; with no agent, a service
  // registered without an address is taken to be local (127.0.0.1).
  const fallback =
    service.address === ''
      ? '127.0.0.1'
      : isIP(service.address) !== 0
        ? service.address
        : undefined;
  const address = readIp(sc, 'Address', base, p, fallback);
  const port =
    sc.Port === undefined || sc.Port === null ? undefined : readInt(sc, 'Port', base, p, 1, 65535);
  const tags =
    sc.Tags === undefined
      ? service.tags
      : readArray(sc, 'Tags', base, p, (v, f) => checkString(v, f, p, { maxLength: 512 }), 256);
  const meta = sc.Meta === undefined ? service.meta : readMeta(sc, 'Meta', base, p);
  const publicListener =
    address !== undefined && port !== undefined ? { address, port } : undefined;
  const rules: ProxyRules = {
    destination: 'from-service',
    defaultLocalServicePort: service.port,
    service,
    datacenter: service.datacenter,
    publicListener,
  };
  const proxy = parseProxy(sc.Proxy, at(base, 'Proxy'), rules, p);
  const given = sc.Check !== undefined || sc.Checks !== undefined;
  const checks = given
    ? parseChecks(sc, base, { id, name }, p)
    : [aliasCheckDraft({ id }, service, base)];
  if (
    address === undefined ||
    !proxy ||
    (sc.Port !== undefined && sc.Port !== null && port === undefined)
  )
    return undefined;
  const { namespace, partition, datacenter } = service;
  const instance: InstanceDraft = {
    id,
    name,
    kind: 'connect-proxy',
    address,
    port: 0,
    tags,
    meta,
    namespace,
    partition,
    datacenter,
    taggedAddresses: {},
    proxy,
    checks,
  };
  return { instance, port };
}
