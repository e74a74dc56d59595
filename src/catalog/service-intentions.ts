import { RE2JS } from 're2js';
import {
  type JsonObject,
  type Problems,
  at,
  nameRule,
  readArray,
  readBool,
  readEnum,
  readObject,
  readString,
} from './input.js';
import type {
  ConfigEntry,
  ConfigEntryKind,
  IntentionHeaderMatch,
  IntentionHttpMatch,
  IntentionPermission,
  IntentionSource,
  Protocol,
  ProxyDefaultsEntry,
  ServiceDefaultsEntry,
  ServiceIntentionsEntry,
} from './types.js';

/**
 * `service-intentions` in Consul's JSON shape (Consul docs "Service intentions configuration
 * reference"): L4 sources (`Action`) and L7 sources (`Permissions` on HTTP path, method and
 * headers; JWT is not supported). Whether the destination speaks HTTP is checked against the
 * catalog when the entry is written (`checkIntentionProtocols`).
 */
export const wildcardName = {
  ...nameRule,
  pattern: /^(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$/,
  patternText: `"*" or ${nameRule.patternText}`,
};

/** Consul's `isValidHTTPMethod`. */
const httpMethods = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
];
/** An HTTP field name (RFC 9110 token), or an HTTP/2 pseudo-header such as `:authority`. */
const headerName = {
  pattern: /^:?[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/,
  patternText: 'an HTTP header name such as "x-team" or ":authority"',
  maxLength: 256,
};
const matchValue = { maxLength: 1024 };
const headerMatchKeys = ['Present', 'Exact', 'Prefix', 'Suffix', 'Regex'] as const;

export function parseIntentions(obj: JsonObject, p: Problems): ServiceIntentionsEntry | undefined {
  const name = readString(obj, 'Name', '', p, undefined, wildcardName);
  if (obj.Sources === undefined)
    p.add(
      'Sources',
      'required (a JSON array of {Name, Peer?, Action} or {Name, Peer?, Permissions})',
    );
  const sources = readArray(obj, 'Sources', '', p, (v, f) => parseSource(v, f, p));
  const seen = new Map<string, string>();
  sources.forEach(({ source, field }) => {
    const key = `${source.peer}/${source.partition}/${source.namespace}/${source.name}`;
    if (seen.has(key))
      p.add(field, `duplicate of ${seen.get(key)} (same Name, Namespace, Partition and Peer)`);
    else seen.set(key, field);
    if (name === '*' && source.permissions)
      p.add(
        at(field, 'Permissions'),
        'not allowed when the destination Name is "*" (Consul: L7 permissions need one destination); write them in the destination\'s own service-intentions entry',
      );
  });
  if (name === undefined) return undefined;
  return {
    kind: 'service-intentions',
    name,
    namespace: 'default',
    partition: 'default',
    sources: sources.map((s) => s.source),
  };
}

function parseSource(
  value: unknown,
  field: string,
  p: Problems,
): { source: IntentionSource; field: string } | undefined {
  const obj = readObject(
    value,
    field,
    ['Name', 'Namespace', 'Partition', 'Peer', 'Action', 'Type', 'Permissions'],
    p,
  );
  if (!obj) return undefined;
  if (obj.Type !== undefined) readEnum(obj, 'Type', field, p, ['consul'] as const);
  const name = readString(obj, 'Name', field, p, undefined, wildcardName);
  const namespace = readString(obj, 'Namespace', field, p, 'default', nameRule);
  const peer = readString(obj, 'Peer', field, p, '', nameRule);
  if (peer && obj.Partition)
    p.add(
      at(field, 'Partition'),
      "must be empty when Peer is set (a source is either a peer's service or a partition's)",
    );
  const partition = readString(obj, 'Partition', field, p, 'default', nameRule);
  const hasPermissions = Array.isArray(obj.Permissions) && obj.Permissions.length > 0;
  if (hasPermissions && obj.Action !== undefined && obj.Action !== null && obj.Action !== '')
    p.add(
      at(field, 'Action'),
      'must be omitted when Permissions are set (each permission has its own Action)',
    );
  const action = hasPermissions
    ? undefined
    : obj.Action === undefined || obj.Action === null || obj.Action === ''
      ? p.add(
          at(field, 'Action'),
          'required: "allow" or "deny" (or give Permissions for an L7 intention)',
        )
      : readEnum(obj, 'Action', field, p, ['allow', 'deny'] as const);
  const permissions = readArray(obj, 'Permissions', field, p, (v, f) => parsePermission(v, f, p));
  if (
    name === undefined ||
    namespace === undefined ||
    peer === undefined ||
    partition === undefined ||
    (action === undefined && !hasPermissions)
  )
    return undefined;
  const base = { name, namespace, partition, peer };
  const source: IntentionSource = hasPermissions ? { ...base, permissions } : { ...base, action };
  return { source, field };
}

function parsePermission(
  value: unknown,
  field: string,
  p: Problems,
): IntentionPermission | undefined {
  const obj = readObject(value, field, ['Action', 'HTTP', 'JWT'], p);
  if (!obj) return undefined;
  if (obj.JWT !== undefined)
    p.add(at(field, 'JWT'), 'not supported: isthmus matches L7 permissions on HTTP only');
  const action = readEnum(obj, 'Action', field, p, ['allow', 'deny'] as const);
  const httpField = at(field, 'HTTP');
  if (obj.HTTP === undefined || obj.HTTP === null)
    return p.add(httpField, 'required: {PathExact|PathPrefix|PathRegex, Methods, Header}');
  const http = parseHttpMatch(obj.HTTP, httpField, p);
  return action === undefined || http === undefined ? undefined : { action, http };
}

function parseHttpMatch(
  value: unknown,
  field: string,
  p: Problems,
): IntentionHttpMatch | undefined {
  const obj = readObject(
    value,
    field,
    ['PathExact', 'PathPrefix', 'PathRegex', 'Header', 'Methods'],
    p,
  );
  if (!obj) return undefined;
  const pathExact = readPath(obj, 'PathExact', field, p);
  const pathPrefix = readPath(obj, 'PathPrefix', field, p);
  const pathRegex = readRegex(obj, 'PathRegex', field, p);
  const paths = [pathExact, pathPrefix, pathRegex].filter((x) => x !== undefined);
  if (paths.length > 1) p.add(field, 'give at most one of PathExact, PathPrefix and PathRegex');
  const header = readArray(obj, 'Header', field, p, (v, f) => parseHeaderMatch(v, f, p), 64);
  const methods = readMethods(obj, field, p);
  const named = ['PathExact', 'PathPrefix', 'PathRegex', 'Header', 'Methods'].some((k) => {
    const v = obj[k];
    return v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0);
  });
  if (!named) p.add(field, 'must not be empty: give a path, Methods or Header to match');
  return {
    ...(pathExact !== undefined && { pathExact }),
    ...(pathPrefix !== undefined && { pathPrefix }),
    ...(pathRegex !== undefined && { pathRegex }),
    header,
    methods,
  };
}

function readPath(obj: JsonObject, key: string, base: string, p: Problems): string | undefined {
  if (obj[key] === undefined || obj[key] === null || obj[key] === '') return undefined;
  return readString(obj, key, base, p, undefined, {
    pattern: /^\//,
    patternText: 'a path starting with "/"',
    ...matchValue,
  });
}

/** A regex as Envoy's `safe_regex` takes it: RE2 syntax (no lookaround, no backreferences). */
function readRegex(obj: JsonObject, key: string, base: string, p: Problems): string | undefined {
  if (obj[key] === undefined || obj[key] === null || obj[key] === '') return undefined;
  const value = readString(obj, key, base, p, undefined, matchValue);
  if (value === undefined) return undefined;
  const problem = re2Problem(value);
  return problem
    ? p.add(
        at(base, key),
        `not a valid RE2 regex (${problem}); Envoy matches with RE2: no lookaround or backreferences`,
      )
    : value;
}

/** RE2's complaint about `pattern`, or undefined when RE2 compiles it. */
export function re2Problem(pattern: string): string | undefined {
  try {
    RE2JS.compile(pattern);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

function readMethods(obj: JsonObject, base: string, p: Problems): string[] {
  const field = at(base, 'Methods');
  const methods = readArray(obj, 'Methods', base, p, (v, f) => {
    const m = typeof v === 'string' ? v.toUpperCase() : undefined;
    if (m !== undefined && httpMethods.includes(m)) return m;
    return p.add(f, `must be one of ${httpMethods.join(', ')} (got ${JSON.stringify(v)})`);
  });
  const seen = new Set<string>();
  for (const m of methods) {
    if (seen.has(m)) p.add(field, `lists ${m} more than once`);
    seen.add(m);
  }
  return methods;
}

function parseHeaderMatch(
  value: unknown,
  field: string,
  p: Problems,
): IntentionHeaderMatch | undefined {
  const obj = readObject(value, field, ['Name', ...headerMatchKeys, 'Invert'], p);
  if (!obj) return undefined;
  const name = readString(obj, 'Name', field, p, undefined, headerName);
  const given = headerMatchKeys.filter(
    (k) => obj[k] !== undefined && obj[k] !== null && obj[k] !== '' && obj[k] !== false,
  );
  if (given.length !== 1)
    p.add(
      field,
      `give exactly one of Present, Exact, Prefix, Suffix and Regex (got ${given.length === 0 ? 'none' : given.join(', ')})`,
    );
  const present = readBool(obj, 'Present', field, p, false);
  const exact = obj.Exact ? readString(obj, 'Exact', field, p, undefined, matchValue) : undefined;
  const prefix = obj.Prefix
    ? readString(obj, 'Prefix', field, p, undefined, matchValue)
    : undefined;
  const suffix = obj.Suffix
    ? readString(obj, 'Suffix', field, p, undefined, matchValue)
    : undefined;
  const regex = readRegex(obj, 'Regex', field, p);
  const invert = readBool(obj, 'Invert', field, p, false);
  if (name === undefined || invert === undefined || given.length !== 1) return undefined;
  return {
    name,
    ...(present && { present }),
    ...(exact !== undefined && { exact }),
    ...(prefix !== undefined && { prefix }),
    ...(suffix !== undefined && { suffix }),
    ...(regex !== undefined && { regex }),
    invert,
  };
}

const httpFamily = (protocol: Protocol) => protocol !== 'tcp';

/** The committed entries the protocol check reads (the catalog index, inside the write). */
export interface CommittedEntries {
  config(kind: ConfigEntryKind, name: string): { readonly entry: ConfigEntry } | undefined;
  /** Absent: no other entries to check against (tests of one kind). */
  configsOf?(kind: ConfigEntryKind): readonly { readonly entry: ConfigEntry }[];
}

/**
 * L7 permissions need an HTTP-family destination (Consul: "L7 intentions within a config entry
 * are restricted to only destination services that define their protocol as HTTP-based via
 * service-defaults or proxy-defaults"). Checked both ways: an intention with Permissions for a
 * tcp service, and a service-defaults or proxy-defaults that would make such a service tcp.
 */
export function checkIntentionProtocols(
  entry: ConfigEntry,
  committed: CommittedEntries,
  p: Problems,
): void {
  const serviceDefaults = (name: string) =>
    committed.config('service-defaults', name)?.entry as ServiceDefaultsEntry | undefined;
  const globalProtocol = () =>
    (committed.config('proxy-defaults', 'global')?.entry as ProxyDefaultsEntry | undefined)?.config
      .protocol ?? 'tcp';
  const withPermissions = () =>
    (committed.configsOf?.('service-intentions') ?? [])
      .map((r) => r.entry as ServiceIntentionsEntry)
      .filter((e) => e.sources.some((s) => s.permissions));
  if (entry.kind === 'service-intentions' && entry.name !== '*') {
    const protocol = serviceDefaults(entry.name)?.protocol ?? globalProtocol();
    if (httpFamily(protocol)) return;
    entry.sources.forEach((s, i) => {
      if (!s.permissions) return;
      p.add(
        `Sources[${i}].Permissions`,
        `L7 permissions need an HTTP-family destination, and ${JSON.stringify(entry.name)} has protocol ${JSON.stringify(protocol)}: write a service-defaults for ${JSON.stringify(entry.name)} with Protocol "http", "http2" or "grpc" first (or use Action for an L4 intention)`,
      );
    });
  } else if (entry.kind === 'service-defaults' && !httpFamily(entry.protocol)) {
    if (withPermissions().some((e) => e.name === entry.name))
      p.add(
        'Protocol',
        `${JSON.stringify(entry.protocol)} would break the L7 intentions of ${JSON.stringify(entry.name)} (its service-intentions has Permissions): keep an HTTP-family protocol, or replace the Permissions with an Action first`,
      );
  } else if (entry.kind === 'proxy-defaults' && !httpFamily(entry.config.protocol ?? 'tcp')) {
    const broken = withPermissions()
      .filter((e) => !serviceDefaults(e.name))
      .map((e) => JSON.stringify(e.name));
    if (broken.length > 0)
      p.add(
        'Config.protocol',
        `${JSON.stringify(entry.config.protocol ?? 'tcp')} would break the L7 intentions of ${broken.join(', ')} (no service-defaults of their own): give them a service-defaults with an HTTP-family Protocol first`,
      );
  }
}
