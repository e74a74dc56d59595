import type {
  HeaderModifiers,
  RouteDestination,
  RouteHttpMatch,
  ServiceRouterEntry,
  ServiceSplitterEntry,
} from '../catalog/types.js';
import { goDuration } from './go-duration.js';

/**
 * `service-splitter` and `service-router` back in Consul's JSON shape, only the fields that are
 * set, so what `config read` prints is what was written.
 */
type Json = Record<string, unknown>;

export function serviceSplitterJson(e: ServiceSplitterEntry): Json {
  return {
    Kind: e.kind,
    Name: e.name,
    Splits: e.splits.map((s) => ({
      Weight: s.weight,
      ...(s.service ? { Service: s.service } : {}),
      ...(s.serviceSubset ? { ServiceSubset: s.serviceSubset } : {}),
      ...(s.peer ? { Peer: s.peer } : {}),
      ...headersJson(s),
    })),
  };
}

export function serviceRouterJson(e: ServiceRouterEntry): Json {
  return {
    Kind: e.kind,
    Name: e.name,
    Routes: e.routes.map((r) => {
      const http = matchJson(r.match);
      return {
        ...(Object.keys(http).length > 0 ? { Match: { HTTP: http } } : {}),
        Destination: destinationJson(r.destination),
      };
    }),
  };
}

function matchJson(m: RouteHttpMatch): Json {
  return {
    ...(m.pathExact ? { PathExact: m.pathExact } : {}),
    ...(m.pathPrefix ? { PathPrefix: m.pathPrefix } : {}),
    ...(m.pathRegex ? { PathRegex: m.pathRegex } : {}),
    ...(m.caseInsensitive ? { CaseInsensitive: true } : {}),
    ...(m.header.length > 0 && {
      Header: m.header.map((h) => ({
        Name: h.name,
        ...(h.present ? { Present: true } : {}),
        ...(h.exact ? { Exact: h.exact } : {}),
        ...(h.prefix ? { Prefix: h.prefix } : {}),
        ...(h.suffix ? { Suffix: h.suffix } : {}),
        ...(h.regex ? { Regex: h.regex } : {}),
        ...(h.invert ? { Invert: true } : {}),
      })),
    }),
    ...(m.queryParam.length > 0 && {
      QueryParam: m.queryParam.map((q) => ({
        Name: q.name,
        ...(q.present ? { Present: true } : {}),
        ...(q.exact ? { Exact: q.exact } : {}),
        ...(q.regex ? { Regex: q.regex } : {}),
      })),
    }),
    ...(m.methods.length > 0 && { Methods: [...m.methods] }),
  };
}

function destinationJson(d: RouteDestination): Json {
  return {
    ...(d.service ? { Service: d.service } : {}),
    ...(d.serviceSubset ? { ServiceSubset: d.serviceSubset } : {}),
    ...(d.prefixRewrite ? { PrefixRewrite: d.prefixRewrite } : {}),
    ...(d.requestTimeoutMs ? { RequestTimeout: goDuration(d.requestTimeoutMs) } : {}),
    ...(d.idleTimeoutMs ? { IdleTimeout: goDuration(d.idleTimeoutMs) } : {}),
    ...(d.numRetries ? { NumRetries: d.numRetries } : {}),
    ...(d.retryOnConnectFailure ? { RetryOnConnectFailure: true } : {}),
    ...(d.retryOn.length > 0 && { RetryOn: [...d.retryOn] }),
    ...(d.retryOnStatusCodes.length > 0 && { RetryOnStatusCodes: [...d.retryOnStatusCodes] }),
    ...headersJson(d),
  };
}

function headersJson(x: {
  readonly requestHeaders?: HeaderModifiers | undefined;
  readonly responseHeaders?: HeaderModifiers | undefined;
}): Json {
  const one = (h: HeaderModifiers) => ({
    ...(Object.keys(h.add).length > 0 && { Add: { ...h.add } }),
    ...(Object.keys(h.set).length > 0 && { Set: { ...h.set } }),
    ...(h.remove.length > 0 && { Remove: [...h.remove] }),
  });
  return {
    ...(x.requestHeaders && { RequestHeaders: one(x.requestHeaders) }),
    ...(x.responseHeaders && { ResponseHeaders: one(x.responseHeaders) }),
  };
}
