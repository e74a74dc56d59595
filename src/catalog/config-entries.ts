import type {
  ConfigEntry,
  ConfigEntryKind,
  ExportConsumer,
  ExportedServicesEntry,
  MeshEntry,
  Protocol,
  ProxyDefaultsEntry,
  ServiceDefaultsEntry,
} from './types.js';
import {
  type JsonObject,
  type Parsed,
  Problems,
  at,
  nameRule,
  readArray,
  readBool,
  readEnum,
  readObject,
  readOptionalObject,
  readString,
} from './input.js';
import { readMeshGateway } from './registration-proxy.js';
import { parseIntentions, wildcardName } from './service-intentions.js';
import { parseSamenessGroup, samenessGroupFields } from './sameness-group.js';
import { parseServiceResolver, serviceResolverFields } from './service-resolver.js';
import { parseServiceSplitter, serviceSplitterFields } from './service-splitter.js';
import { parseServiceRouter, serviceRouterFields } from './service-router.js';

/**
 * Config entries (`PUT /v1/config`), Consul's PascalCase JSON → the catalog model. As in Consul CE,
 * entries live in the default namespace and partition. Unknown fields are errors.
 * `CreateIndex`/`ModifyIndex` are accepted and ignored, so `config read` output can be written
 * back.
 */
export const configEntryKinds: readonly ConfigEntryKind[] = [
  'proxy-defaults',
  'service-defaults',
  'mesh',
  'service-intentions',
  'exported-services',
  'service-resolver',
  'service-splitter',
  'service-router',
  'sameness-group',
];
export const protocols: readonly Protocol[] = ['tcp', 'http', 'http2', 'grpc'];

const meta = ['Kind', 'Name', 'Namespace', 'Partition', 'CreateIndex', 'ModifyIndex'];
const fieldsOf: Readonly<Record<ConfigEntryKind, readonly string[]>> = {
  'proxy-defaults': [...meta, 'Config', 'MeshGateway'],
  'service-defaults': [...meta, 'Protocol', 'MeshGateway'],
  mesh: [...meta, 'DefaultIntentionAction', 'AllowEnablingPermissiveMutualTLS', 'Peering'],
  'service-intentions': [...meta, 'Sources'],
  'exported-services': [...meta, 'Services'],
  'service-resolver': [...meta, ...serviceResolverFields],
  'service-splitter': [...meta, ...serviceSplitterFields],
  'service-router': [...meta, ...serviceRouterFields],
  'sameness-group': [...meta, ...samenessGroupFields],
};
const kindList = configEntryKinds.map((k) => JSON.stringify(k)).join(', ');

export function parseConfigKind(value: unknown, field = 'Kind'): Parsed<ConfigEntryKind> {
  const p = new Problems();
  const kind = configEntryKinds.find((k) => k === value);
  if (!kind)
    p.add(
      field,
      value === undefined || value === ''
        ? `required (one of ${kindList})`
        : `${JSON.stringify(value)} is not one of ${kindList}`,
    );
  return p.result(kind);
}

export function parseConfigEntry(input: unknown): Parsed<ConfigEntry> {
  const p = new Problems();
  const raw =
    typeof input === 'object' && input !== null && !Array.isArray(input)
      ? (input as JsonObject)
      : undefined;
  if (!raw)
    return (
      p.add('', 'must be a JSON object with Kind and Name') ?? p.result<ConfigEntry>(undefined)
    );
  const kind = parseConfigKind(raw.Kind);
  if (!kind.ok) return kind;
  const obj = readObject(raw, '', fieldsOf[kind.value], p);
  if (!obj) return p.result<ConfigEntry>(undefined);
  for (const key of ['Namespace', 'Partition'])
    readString(obj, key, '', p, 'default', {
      pattern: /^default$/,
      patternText: 'only "default" (config entries live in the default namespace and partition)',
    });
  return p.result(parsers[kind.value](obj, p));
}

const parsers: {
  readonly [K in ConfigEntryKind]: (
    obj: JsonObject,
    p: Problems,
  ) => Extract<ConfigEntry, { kind: K }> | undefined;
} = {
  'proxy-defaults': parseProxyDefaults,
  'service-defaults': parseServiceDefaults,
  mesh: parseMesh,
  'service-intentions': parseIntentions,
  'exported-services': parseExportedServices,
  'service-resolver': (obj, p) =>
    parseServiceResolver(obj, readString(obj, 'Name', '', p, undefined, nameRule), p),
  'service-splitter': (obj, p) =>
    parseServiceSplitter(obj, readString(obj, 'Name', '', p, undefined, nameRule), p),
  'service-router': (obj, p) =>
    parseServiceRouter(obj, readString(obj, 'Name', '', p, undefined, nameRule), p),
  'sameness-group': parseSamenessGroup,
};

/** Kinds with a single entry take that fixed name (and default to it when Name is absent). */
function fixedName<N extends string>(obj: JsonObject, name: N, p: Problems): N | undefined {
  const rule = { pattern: new RegExp(`^${name}$`), patternText: `must be "${name}"` };
  return readString(obj, 'Name', '', p, name, rule) as N | undefined;
}

function parseProxyDefaults(obj: JsonObject, p: Problems): ProxyDefaultsEntry | undefined {
  const name = fixedName(obj, 'global', p);
  const config = readOptionalObject(obj, 'Config', '', ['protocol'], p);
  const protocol =
    config && config.protocol !== undefined
      ? readEnum(config, 'protocol', 'Config', p, protocols)
      : undefined;
  const meshGateway = readMeshGateway(obj, '', p);
  if (name === undefined) return undefined;
  return {
    kind: 'proxy-defaults',
    name,
    config: protocol === undefined ? {} : { protocol },
    meshGateway,
  };
}

function parseServiceDefaults(obj: JsonObject, p: Problems): ServiceDefaultsEntry | undefined {
  const name = readString(obj, 'Name', '', p, undefined, nameRule);
  const protocol = readEnum(obj, 'Protocol', '', p, protocols, 'tcp');
  const meshGateway = readMeshGateway(obj, '', p);
  if (name === undefined || protocol === undefined) return undefined;
  return {
    kind: 'service-defaults',
    name,
    namespace: 'default',
    partition: 'default',
    protocol,
    meshGateway,
  };
}

function parseMesh(obj: JsonObject, p: Problems): MeshEntry | undefined {
  const name = fixedName(obj, 'mesh', p);
  // Consul decides unmatched traffic by the ACL default policy; isthmus has this field instead.
  const defaultIntentionAction = readEnum(
    obj,
    'DefaultIntentionAction',
    '',
    p,
    ['allow', 'deny'] as const,
    'allow',
  );
  // Accepted for compatibility with Consul configs; isthmus always requires mutual TLS.
  readBool(obj, 'AllowEnablingPermissiveMutualTLS', '', p, false);
  const peering = readOptionalObject(obj, 'Peering', '', ['PeerThroughMeshGateways'], p);
  const peerThroughMeshGateways = peering
    ? readBool(peering, 'PeerThroughMeshGateways', 'Peering', p, false)
    : false;
  if (
    name === undefined ||
    defaultIntentionAction === undefined ||
    peerThroughMeshGateways === undefined
  )
    return undefined;
  return { kind: 'mesh', name, defaultIntentionAction, peering: { peerThroughMeshGateways } };
}

function parseExportedServices(obj: JsonObject, p: Problems): ExportedServicesEntry | undefined {
  const name = readString(obj, 'Name', '', p, undefined, {
    pattern: /^default$/,
    patternText: 'must be "default" (the partition whose services are exported)',
  });
  const services = readArray(obj, 'Services', '', p, (v, f) => parseExportedService(v, f, p));
  const seen = new Map<string, string>();
  services.forEach(({ service, field }) => {
    const key = `${service.namespace}/${service.name}`;
    if (seen.has(key)) p.add(field, `duplicate of ${seen.get(key)} (same Name and Namespace)`);
    else seen.set(key, field);
  });
  if (name === undefined) return undefined;
  return { kind: 'exported-services', name, services: services.map((s) => s.service) };
}

type ExportedService = ExportedServicesEntry['services'][number];

function parseExportedService(
  value: unknown,
  field: string,
  p: Problems,
): { service: ExportedService; field: string } | undefined {
  const obj = readObject(value, field, ['Name', 'Namespace', 'Consumers'], p);
  if (!obj) return undefined;
  const name = readString(obj, 'Name', field, p, undefined, wildcardName);
  const namespace = readString(obj, 'Namespace', field, p, 'default', nameRule);
  const raw = obj.Consumers;
  if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0))
    p.add(at(field, 'Consumers'), 'required: at least one {Peer} or {SamenessGroup}');
  const consumers = readArray(obj, 'Consumers', field, p, (v, f) => parseConsumer(v, f, p));
  const seen = new Set<string>();
  for (const { consumer, field: f } of consumers) {
    const [key, value] =
      'peer' in consumer ? ['Peer', consumer.peer] : ['SamenessGroup', consumer.samenessGroup];
    if (seen.has(`${key}/${value}`)) p.add(at(f, key), `duplicate ${key} ${JSON.stringify(value)}`);
    seen.add(`${key}/${value}`);
  }
  if (name === undefined || namespace === undefined) return undefined;
  return { service: { name, namespace, consumers: consumers.map((c) => c.consumer) }, field };
}

/** `{Peer}` or `{SamenessGroup}` (every peer member of the group); partitions are not built. */
function parseConsumer(
  value: unknown,
  field: string,
  p: Problems,
): { consumer: ExportConsumer; field: string } | undefined {
  const obj = readObject(value, field, ['Peer', 'Partition', 'SamenessGroup'], p);
  if (!obj) return undefined;
  if (obj.Partition !== undefined)
    p.add(
      at(field, 'Partition'),
      'not supported: isthmus exports to cluster peers only; use Peer or SamenessGroup',
    );
  if (obj.SamenessGroup !== undefined && obj.SamenessGroup !== null && obj.SamenessGroup !== '') {
    if (obj.Peer !== undefined && obj.Peer !== null && obj.Peer !== '')
      p.add(at(field, 'Peer'), 'cannot be set together with SamenessGroup (one consumer each)');
    const samenessGroup = readString(obj, 'SamenessGroup', field, p, undefined, nameRule);
    return samenessGroup === undefined ? undefined : { consumer: { samenessGroup }, field };
  }
  const peer = readString(obj, 'Peer', field, p, undefined, nameRule);
  return peer === undefined ? undefined : { consumer: { peer }, field };
}
