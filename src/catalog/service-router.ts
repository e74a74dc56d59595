import {
  type JsonObject,
  type Problems,
  at,
  nameRule,
  readArray,
  readBool,
  readInt,
  readObject,
  readOptionalObject,
  readString,
} from './input.js';
import { checkHeaderName, checkRe2, readDurationMs, readHeaderModifiers } from './routing-input.js';
import type {
  HeaderMatch,
  QueryParamMatch,
  RouteDestination,
  RouteHttpMatch,
  ServiceRoute,
  ServiceRouterEntry,
} from './routing-types.js';

/**
 * `service-router` in Consul's JSON shape (Consul docs "Service router configuration reference"):
 * HTTP requests matched on path, headers, query parameters and method, sent to another service or
 * subset with retries, timeouts and a prefix rewrite. Rules follow Consul's `Validate`; references
 * are checked when the entry is written (`checkRoutingReferences`).
 */
export const serviceRouterFields = ['Routes'];

const onlyDefault = {
  pattern: /^default$/,
  patternText: 'only "default" (isthmus has the default namespace and partition only)',
};
const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];
/** Envoy's `x-envoy-retry-on` and gRPC retry conditions that Consul accepts in `RetryOn`. */
export const retryOnValues = [
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'envoy-ratelimited',
  'retriable-4xx',
  'refused-stream',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
];

export function parseServiceRouter(
  obj: JsonObject,
  name: string | undefined,
  p: Problems,
): ServiceRouterEntry | undefined {
  const routes = readArray(obj, 'Routes', '', p, (v, f) => readRoute(v, f, p), 256);
  if (name === undefined) return undefined;
  return { kind: 'service-router', name, namespace: 'default', partition: 'default', routes };
}

function readRoute(value: unknown, field: string, p: Problems): ServiceRoute | undefined {
  const obj = readObject(value, field, ['Match', 'Destination'], p);
  if (!obj) return undefined;
  const matchObj = readOptionalObject(obj, 'Match', field, ['HTTP'], p);
  const http = matchObj
    ? readOptionalObject(matchObj, 'HTTP', at(field, 'Match'), httpMatchFields, p)
    : undefined;
  const match = readHttpMatch(http ?? {}, at(field, 'Match.HTTP'), p);
  const destObj = readOptionalObject(obj, 'Destination', field, destinationFields, p);
  const destination = readDestination(destObj ?? {}, at(field, 'Destination'), p);
  if (destination?.prefixRewrite && match && !match.pathPrefix && !match.pathExact)
    p.add(
      at(field, 'Destination.PrefixRewrite'),
      'needs Match.HTTP.PathPrefix or PathExact (the part it replaces)',
    );
  if (!match || !destination) return undefined;
  return { match, destination };
}

const httpMatchFields = [
  'PathExact',
  'PathPrefix',
  'PathRegex',
  'CaseInsensitive',
  'Header',
  'QueryParam',
  'Methods',
];

function readHttpMatch(obj: JsonObject, field: string, p: Problems): RouteHttpMatch | undefined {
  const pathExact = readString(obj, 'PathExact', field, p, '');
  const pathPrefix = readString(obj, 'PathPrefix', field, p, '');
  const pathRegex = readString(obj, 'PathRegex', field, p, '');
  const set = [pathExact, pathPrefix, pathRegex].filter((s) => s).length;
  if (set > 1) p.add(field, 'set only one of PathExact, PathPrefix and PathRegex');
  for (const [key, v] of [
    ['PathExact', pathExact],
    ['PathPrefix', pathPrefix],
  ] as const)
    if (v && !v.startsWith('/'))
      p.add(at(field, key), `must start with "/" (got ${JSON.stringify(v)})`);
  if (pathRegex) checkRe2(pathRegex, at(field, 'PathRegex'), p);
  const caseInsensitive = readBool(obj, 'CaseInsensitive', field, p, false);
  const header = readArray(obj, 'Header', field, p, (v, f) => readHeaderMatch(v, f, p), 64);
  const queryParam = readArray(obj, 'QueryParam', field, p, (v, f) => readQueryMatch(v, f, p), 64);
  const seen = new Set<string>();
  const methodList = readArray(obj, 'Methods', field, p, (v, f) => {
    if (typeof v !== 'string' || !methods.includes(v))
      return p.add(f, `must be one of ${methods.join(', ')} (got ${JSON.stringify(v)})`);
    if (seen.has(v)) return p.add(f, `duplicate method ${v}`);
    seen.add(v);
    return v;
  });
  if (pathExact === undefined || pathPrefix === undefined || pathRegex === undefined)
    return undefined;
  return {
    pathExact,
    pathPrefix,
    pathRegex,
    ...(caseInsensitive ? { caseInsensitive } : {}),
    header,
    queryParam,
    methods: methodList,
  };
}

function readHeaderMatch(value: unknown, field: string, p: Problems): HeaderMatch | undefined {
  const obj = readObject(
    value,
    field,
    ['Name', 'Present', 'Exact', 'Prefix', 'Suffix', 'Regex', 'Invert'],
    p,
  );
  if (!obj) return undefined;
  const name =
    obj.Name === undefined
      ? p.add(at(field, 'Name'), 'required (a header name)')
      : checkHeaderName(obj.Name, at(field, 'Name'), p);
  const present = readBool(obj, 'Present', field, p, false);
  const exact = readString(obj, 'Exact', field, p, '');
  const prefix = readString(obj, 'Prefix', field, p, '');
  const suffix = readString(obj, 'Suffix', field, p, '');
  const regex = readString(obj, 'Regex', field, p, '');
  const invert = readBool(obj, 'Invert', field, p, false);
  if ([present, exact, prefix, suffix, regex].filter((x) => x).length !== 1)
    p.add(field, 'set exactly one of Present, Exact, Prefix, Suffix and Regex');
  if (regex) checkRe2(regex, at(field, 'Regex'), p);
  if (
    name === undefined ||
    present === undefined ||
    exact === undefined ||
    prefix === undefined ||
    suffix === undefined ||
    regex === undefined ||
    invert === undefined
  )
    return undefined;
  return { name, present, exact, prefix, suffix, regex, invert };
}

function readQueryMatch(value: unknown, field: string, p: Problems): QueryParamMatch | undefined {
  const obj = readObject(value, field, ['Name', 'Present', 'Exact', 'Regex'], p);
  if (!obj) return undefined;
  const name = readString(obj, 'Name', field, p, undefined, { maxLength: 256 });
  const present = readBool(obj, 'Present', field, p, false);
  const exact = readString(obj, 'Exact', field, p, '');
  const regex = readString(obj, 'Regex', field, p, '');
  if ([present, exact, regex].filter((x) => x).length !== 1)
    p.add(field, 'set exactly one of Present, Exact and Regex');
  if (regex) checkRe2(regex, at(field, 'Regex'), p);
  if (name === undefined || present === undefined || exact === undefined || regex === undefined)
    return undefined;
  return { name, present, exact, regex };
}

const destinationFields = [
  'Service',
  'ServiceSubset',
  'Namespace',
  'Partition',
  'PrefixRewrite',
  'RequestTimeout',
  'IdleTimeout',
  'NumRetries',
  'RetryOnConnectFailure',
  'RetryOn',
  'RetryOnStatusCodes',
  'RequestHeaders',
  'ResponseHeaders',
];

function readDestination(
  obj: JsonObject,
  field: string,
  p: Problems,
): RouteDestination | undefined {
  for (const key of ['Namespace', 'Partition'])
    readString(obj, key, field, p, 'default', onlyDefault);
  const service = readString(obj, 'Service', field, p, '', nameRule);
  const serviceSubset = readString(obj, 'ServiceSubset', field, p, '', nameRule);
  const prefixRewrite = readString(obj, 'PrefixRewrite', field, p, '');
  const requestTimeoutMs = readDurationMs(obj, 'RequestTimeout', field, p);
  const idleTimeoutMs = readDurationMs(obj, 'IdleTimeout', field, p);
  const numRetries = readInt(obj, 'NumRetries', field, p, 0, 100, 0);
  const retryOnConnectFailure = readBool(obj, 'RetryOnConnectFailure', field, p, false);
  const retryOn = readArray(obj, 'RetryOn', field, p, (v, f) =>
    typeof v === 'string' && retryOnValues.includes(v)
      ? v
      : p.add(f, `must be one of ${retryOnValues.join(', ')} (got ${JSON.stringify(v)})`),
  );
  const retryOnStatusCodes = readArray(obj, 'RetryOnStatusCodes', field, p, (v, f) =>
    typeof v === 'number' && Number.isInteger(v) && v >= 100 && v <= 599
      ? v
      : p.add(f, `must be an HTTP status code 100-599 (got ${JSON.stringify(v)})`),
  );
  const requestHeaders = readHeaderModifiers(obj, 'RequestHeaders', field, p);
  const responseHeaders = readHeaderModifiers(obj, 'ResponseHeaders', field, p);
  if (
    service === undefined ||
    serviceSubset === undefined ||
    prefixRewrite === undefined ||
    requestTimeoutMs === undefined ||
    idleTimeoutMs === undefined ||
    numRetries === undefined ||
    retryOnConnectFailure === undefined
  )
    return undefined;
  return {
    service,
    serviceSubset,
    prefixRewrite,
    requestTimeoutMs,
    idleTimeoutMs,
    numRetries,
    retryOnConnectFailure,
    retryOn,
    retryOnStatusCodes,
    ...(requestHeaders ? { requestHeaders } : {}),
    ...(responseHeaders ? { responseHeaders } : {}),
  };
}
