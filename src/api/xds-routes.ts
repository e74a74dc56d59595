import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceInstance } from '../catalog/types.js';
import { IsthmusError } from '../errors.js';
import type { StreamStatus } from '../xds/ads/stream-status.js';
import { entriesOf } from '../xds/cache/proxy-view.js';
import { expandedJson } from '../xds/envoy-json.js';
import { redactSecrets } from '../xds/redact.js';
import { buildClientStatus } from '../xds/csds.js';
import { ClientStatusRequest, ClientStatusResponse } from '../gen/envoy/service/status/v3/csds.js';
import {
  newestStreams,
  proxyStatusJson,
  resourceStatuses,
  type ProxyStatusJson,
  type ResourceSyncStatus,
} from '../xds/status.js';
import { type ConfigType, configTypeOf, configTypes } from '../xds/types.js';
import { typeNameOf } from '../proto-any.js';
import type { XdsClientTls } from '../xds/tls.js';
import { type ClusterView, askOthers, markUnreachable, wantsLocal } from './cluster-fanout.js';
import { anyone, readers, withAccess } from './route-access.js';
import { instanceTarget } from './service-targets.js';

/** The part of the xDS server the HTTP API reads. */
export interface XdsStatusSource {
  proxyStatus(): unknown[];
  /** Open, admitted ADS streams (per-proxy routes read their views); absent: none is connected. */
  streamStatuses?(): readonly StreamStatus[];
  /** How to verify the xDS port; undefined when it is plaintext (absent: plaintext). */
  clientTls?(): XdsClientTls | undefined;
}

/**
 * `GET /v1/xds/server`: what a client of the xDS port needs, as `isthmus envoy bootstrap` reads it.
 * Public, like `GET /v1/connect/ca/roots`: roots and a name are no secret.
 */
export interface XdsServerJson {
  readonly TLS: boolean;
  /** The name the server certificate carries (SNI, SAN match); absent when plaintext. */
  readonly ServerName?: string;
  /** PEM bundle of every root the cluster trusts now, active first; absent when plaintext. */
  readonly CaPem?: string;
}

/** What tells a proxy's kind, and the service that owns it: the catalog (`Catalog.instance`). */
export interface ProxyKindSource {
  instance(id: string): Pick<ServiceInstance, 'name' | 'kind' | 'proxy'> | undefined;
}

/**
 * `sidecar` for a connect-proxy, `mesh-gateway`, or `unknown` when the node id is no registered
 * proxy.
 */
export type ProxyKind = 'sidecar' | 'mesh-gateway' | 'unknown';

export type ProxyJson = ProxyStatusJson & {
  readonly Kind: ProxyKind;
  /** The server of the cluster the proxy is connected to (absent on a bare API without one). */
  readonly Server?: string;
};

export interface ProxyConfigJson {
  readonly ID: string;
  readonly Type: ConfigType;
  readonly Resources: readonly {
    readonly Name: string;
    readonly Version: string;
    /**
     * NOT_REQUESTED: in the proxy's config, but nothing the proxy holds refers to it yet, so it
     * never asked for it.
     */
    readonly Status: ResourceSyncStatus | 'NOT_REQUESTED';
    /** Envoy JSON with `@type` and every Any expanded; secret material is "[redacted]". */
    readonly Resource: unknown;
  }[];
}

/**
 * `GET /v1/xds/proxies` (one entry per connected proxy, the same data as CSDS),
 * `GET /v1/xds/proxies/:id` and `GET /v1/xds/proxies/:id/config/:type` (what the server wants the
 * proxy to hold, as Envoy JSON, private keys redacted here: they never leave the server over HTTP).
 */
export function registerXdsRoutes(
  app: FastifyInstance,
  xds: XdsStatusSource,
  catalog?: ProxyKindSource,
  cluster?: ClusterView,
): void {
  // A service's token reads the proxies of its own instances (src/api/service-targets.ts).
  const proxyAccess = withAccess({
    read: true,
    ...(catalog && { service: instanceTarget(catalog, 'id') }),
  });
  const withKind = (p: ProxyStatusJson): ProxyJson => {
    const { ID, ...rest } = p;
    return { ID, Kind: kindOf(catalog, ID), ...(cluster && { Server: cluster.self }), ...rest };
  };
  app.get('/v1/xds/server', withAccess(anyone), async (): Promise<XdsServerJson> => {
    const tls = xds.clientTls?.();
    return tls ? { TLS: true, ServerName: tls.serverName, CaPem: tls.caPem } : { TLS: false };
  });
  // Every proxy of the cluster: this server's, then each other server's own list (`?local=1`), a
  // server that does not answer named in the isthmus-unreachable-servers header (§1 "Membership").
  // Without a catalog (a bare API in tests) the list is served as the xDS server gives it.
  app.get('/v1/xds/proxies', withAccess(readers), async (req, reply) => {
    if (!catalog) return xds.proxyStatus();
    const mine = (xds.proxyStatus() as ProxyStatusJson[]).map(withKind);
    if (wantsLocal(req)) return mine;
    const others = await askOthers<ProxyJson[]>(cluster, req, '/v1/xds/proxies');
    markUnreachable(reply, others);
    return [...mine, ...others.answers.flatMap((a) => a.body)];
  });
  // This server's CSDS answer to `request` (a base64 ClientStatusRequest), as base64: what CSDS on
  // another server of the cluster adds to its own (src/server/csds-fanout.ts). Never fans out.
  app.get<{ Querystring: { request?: string } }>(
    '/v1/xds/csds',
    withAccess(readers),
    async (req) => {
      const request = parseCsdsRequest(req.query.request);
      const res = buildClientStatus(() => xds.streamStatuses?.() ?? [], request);
      return {
        Response: Buffer.from(ClientStatusResponse.encode(res).finish()).toString('base64'),
      };
    },
  );
  // One proxy, from whichever server it is connected to.
  app.get<{ Params: { id: string } }>('/v1/xds/proxies/:id', proxyAccess, async (req, reply) => {
    const newest = newestStreams(xds.streamStatuses?.() ?? []).get(req.params.id);
    if (newest || wantsLocal(req))
      return withKind(proxyStatusJson(sessionOf(newest, req.params.id)));
    return fromHolder(req, reply, `/v1/xds/proxies/${encodeURIComponent(req.params.id)}`);
  });
  app.get<{ Params: { id: string; type: string } }>(
    '/v1/xds/proxies/:id/config/:type',
    proxyAccess,
    async (req, reply) => {
      const type = parseConfigType(req.params.type);
      const newest = newestStreams(xds.streamStatuses?.() ?? []).get(req.params.id);
      if (newest || wantsLocal(req)) return proxyConfigJson(sessionOf(newest, req.params.id), type);
      return fromHolder(
        req,
        reply,
        `/v1/xds/proxies/${encodeURIComponent(req.params.id)}/config/${type}`,
      );
    },
  );

  /** The answer of the other server the proxy is connected to; 404 when none has it. */
  async function fromHolder(req: FastifyRequest, reply: FastifyReply, path: string) {
    const id = (req.params as { id: string }).id;
    const others = await askOthers<unknown>(cluster, req, path);
    markUnreachable(reply, others);
    const found = others.answers[0];
    if (found) return found.body;
    const missing = others.unreachable.map((u) => u.server);
    throw new IsthmusError(
      'not_found',
      `proxy ${JSON.stringify(id)} is not connected to ${cluster && cluster.others().length > 0 ? 'any server of this cluster' : 'this server'}${missing.length > 0 ? ` (no answer from ${missing.join(', ')})` : ''} (\`isthmus proxy-status\` lists connected proxies)`,
    );
  }
}

function kindOf(catalog: ProxyKindSource | undefined, id: string): ProxyKind {
  const kind = catalog?.instance(id)?.kind;
  return kind === 'connect-proxy'
    ? 'sidecar'
    : kind === 'mesh-gateway'
      ? 'mesh-gateway'
      : 'unknown';
}

/** The newest stream of the proxy; 404 when it has none. */
function sessionOf(newest: StreamStatus | undefined, id: string): StreamStatus {
  if (!newest)
    throw new IsthmusError(
      'not_found',
      `proxy ${JSON.stringify(id)} is not connected to this server (\`isthmus proxy-status\` lists connected proxies)`,
    );
  return newest;
}

function parseCsdsRequest(raw: string | undefined): ClientStatusRequest {
  try {
    return ClientStatusRequest.decode(Buffer.from(raw ?? '', 'base64'));
  } catch (err) {
    throw new IsthmusError(
      'invalid_argument',
      `request: not a base64 envoy.service.status.v3.ClientStatusRequest (${(err as Error).message})`,
      'request',
    );
  }
}

function parseConfigType(type: string): ConfigType {
  const parsed = configTypeOf(type);
  if (parsed) return parsed;
  throw new IsthmusError(
    'invalid_argument',
    `type: ${JSON.stringify(type)} is not one of ${Object.keys(configTypes).join(', ')}`,
    'type',
  );
}

/** The resources of one type in the proxy's current view, in name order, redacted. */
export function proxyConfigJson(session: StreamStatus, type: ConfigType): ProxyConfigJson {
  const typeUrl = configTypes[type];
  const typeName = typeNameOf(typeUrl);
  const statuses = new Map(
    resourceStatuses(session)
      .filter((s) => s.typeUrl === typeUrl)
      .map((s) => [s.name, s.status]),
  );
  const entries = entriesOf(session.view, typeUrl).sorted;
  return {
    ID: session.nodeId ?? '',
    Type: type,
    Resources: entries.map((e) => ({
      Name: e.name,
      Version: e.version,
      Status: statuses.get(e.name) ?? 'NOT_REQUESTED',
      Resource: redactSecrets({
        '@type': typeUrl,
        ...(expandedJson(typeName, e.messageBytes) as Record<string, unknown>),
      }),
    })),
  };
}
