import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { presentedToken, tokensEqual } from '../acl/http-token.js';
import { dnsLabel } from '../dns-names.js';
import { IsthmusError } from '../errors.js';
import { clip } from '../problems.js';

/**
 * WAN federation's forwarded requests (docs/architecture.md §6c), as Consul's servers forward an
 * RPC to another datacenter: `?dc=<dc>` on a catalog, health or config read runs on that
 * datacenter's servers, and a config entry write on a secondary runs on the primary. Both travel
 * over the federation link through the mesh gateways (`Forward`, mutual TLS between federation
 * server leaves); this module is the HTTP side of both ends.
 *
 * Authorization: tokens are per datacenter (not replicated). The receiving server checks the
 * caller's token for the route first (src/api/auth.ts runs before the forwarding hook), then
 * forwards without it; the target runs a forwarded request only if it came from a verified
 * federation server of another datacenter (src/federation/server.ts) and names one of the routes
 * below, whose access needs no more than the caller's token already had here. Reads are open to
 * anyone; the one forwarded write, config entries, is the operator's on both ends.
 */
export interface FederationForwarding {
  readonly datacenter: string;
  readonly primary: string;
  datacenters(): readonly string[];
  forward(
    dc: string,
    call: { method: string; path: string; body: Buffer; timeoutMs: number },
  ): Promise<{
    status: number;
    contentType: string;
    body: Buffer;
    run: string;
    replicatedIndex: number;
  }>;
  /** After a forwarded write: resolves once this secondary applied it, or after `timeoutMs`. */
  replicated(run: string, index: number, timeoutMs: number): Promise<boolean>;
}

/** Reads `?dc=` may send elsewhere, by route (Consul's catalog, health and config reads). */
const forwardableReads: ReadonlySet<string> = new Set([
  'GET /v1/catalog/services',
  'GET /v1/catalog/service/:name',
  'GET /v1/health/service/:name',
  'GET /v1/health/connect/:name',
  'GET /v1/config/:kind',
  'GET /v1/config/:kind/:name',
]);

/** Writes a secondary sends to the primary: config entries are global (§6c). */
const forwardableWrites: ReadonlySet<string> = new Set([
  'PUT /v1/config',
  'DELETE /v1/config/:kind/:name',
]);

const forwardTimeoutMs = 15_000;
/** How long a forwarded write waits to see itself replicated here before answering anyway. */
const replicatedWithinMs = 5_000;

function routeOf(request: FastifyRequest): string {
  return `${request.method} ${request.routeOptions.url ?? ''}`;
}

/**
 * Installs both ends on `app` (after `installHttpAuth`, whose hooks must run first): the hook that
 * forwards, and the check that a request another datacenter forwarded here (it carries `marker`)
 * names a forwardable route. Returns what runs such a request (the federation port's `Forward`).
 */
export function installFederationForwarding(
  app: FastifyInstance,
  opts: {
    /** This server's datacenter: `?dc=` naming it answers here, federated or not. */
    readonly datacenter: string;
    /** Absent: not federated, and `?dc=` naming another datacenter is a 400. */
    readonly forwarding: FederationForwarding | undefined;
    readonly marker: string;
  },
): (req: ForwardedHttpRequest) => Promise<ForwardedHttpAnswer> {
  const { datacenter, forwarding, marker } = opts;
  const isForwarded = (request: FastifyRequest): boolean => {
    const presented = presentedToken(request);
    return presented !== undefined && tokensEqual(presented, marker);
  };
  app.addHook('onRequest', async (request, reply) => {
    if (!isForwarded(request)) return;
    const route = routeOf(request);
    if (!forwardableReads.has(route) && !forwardableWrites.has(route))
      return reply.status(403).send({
        error: `Permission denied: ${clip(`${request.method} ${request.url}`)} is not an operation another datacenter may forward here`,
      });
  });
  app.addHook('preHandler', async (request, reply) => {
    if (isForwarded(request)) return;
    const route = routeOf(request);
    if (forwardableReads.has(route)) return forwardRead(request, reply, datacenter, forwarding);
    if (forwardableWrites.has(route)) return forwardWrite(request, reply, datacenter, forwarding);
  });
  return (req) => runForwarded(app, marker, req);
}

/**
 * The marker of forwarded requests (give it to `installHttpAuth` too): random per process, it
 * never leaves it, so only requests `runForwarded` injects carry it.
 */
export function forwardedRequestMarker(): string {
  return randomBytes(32).toString('base64url');
}

export interface ForwardedHttpRequest {
  readonly from: string;
  readonly method: string;
  readonly path: string;
  readonly body: Buffer;
}

export interface ForwardedHttpAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer;
}

/** Runs a request another datacenter forwarded, through this server's own routes and hooks. */
async function runForwarded(
  app: FastifyInstance,
  marker: string,
  req: ForwardedHttpRequest,
): Promise<ForwardedHttpAnswer> {
  if (!['GET', 'PUT', 'DELETE'].includes(req.method) || !req.path.startsWith('/v1/'))
    return answer(403, { error: 'Permission denied: not a forwardable operation' });
  const res = await app.inject({
    method: req.method as 'GET' | 'PUT' | 'DELETE',
    url: req.path,
    headers: {
      authorization: `Bearer ${marker}`,
      ...(req.body.length > 0 ? { 'content-type': 'application/json' } : {}),
    },
    ...(req.body.length > 0 ? { payload: req.body } : {}),
  });
  const type = res.headers['content-type'];
  return {
    status: res.statusCode,
    contentType: typeof type === 'string' ? type : 'application/json; charset=utf-8',
    body: res.rawPayload,
  };
}

function answer(status: number, body: unknown): ForwardedHttpAnswer {
  return {
    status,
    contentType: 'application/json; charset=utf-8',
    body: Buffer.from(JSON.stringify(body)),
  };
}

/** `?dc=`: undefined when absent or empty; otherwise a datacenter name, or a 400 naming `dc`. */
function dcParam(request: FastifyRequest): string | undefined {
  const raw = (request.query as Record<string, unknown> | undefined)?.dc;
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string' || !dnsLabel.test(raw))
    throw new IsthmusError(
      'invalid_argument',
      `dc: ${clip(JSON.stringify(raw), 80)} is not a datacenter name (lowercase letters, digits and '-')`,
      'dc',
    );
  return raw;
}

function knownDc(dc: string, known: readonly string[]): string {
  if (known.includes(dc)) return dc;
  throw new IsthmusError(
    'invalid_argument',
    `dc: unknown datacenter ${JSON.stringify(dc)}; known datacenters: ${known.join(', ')} (GET /v1/catalog/datacenters)`,
    'dc',
  );
}

/** The request as the other datacenter should see it: `dc` taken out of the query. */
function forwardedPath(request: FastifyRequest): string {
  const url = new URL(request.url, 'http://forwarded');
  url.searchParams.delete('dc');
  return url.pathname + url.search;
}

async function forwardRead(
  request: FastifyRequest,
  reply: FastifyReply,
  local: string,
  forwarding: FederationForwarding | undefined,
): Promise<FastifyReply | undefined> {
  const dc = dcParam(request);
  if (dc === undefined || dc === local) return undefined;
  if (!forwarding)
    throw new IsthmusError(
      'invalid_argument',
      `dc: unknown datacenter ${JSON.stringify(dc)}; this server is not in a WAN federation (its datacenter is ${local})`,
      'dc',
    );
  knownDc(dc, forwarding.datacenters());
  const res = await forwarding.forward(dc, {
    method: request.method,
    path: forwardedPath(request),
    body: Buffer.alloc(0),
    timeoutMs: forwardTimeoutMs,
  });
  return reply.status(res.status).type(res.contentType).send(res.body);
}

async function forwardWrite(
  request: FastifyRequest,
  reply: FastifyReply,
  local: string,
  forwarding: FederationForwarding | undefined,
): Promise<FastifyReply | undefined> {
  const dc = dcParam(request);
  const primary = forwarding?.primary ?? local;
  if (dc !== undefined && dc !== local && dc !== primary)
    throw new IsthmusError(
      'invalid_argument',
      `dc: config entries are global, written in the primary datacenter ${primary}; leave dc out or name ${primary}`,
      'dc',
    );
  if (!forwarding || local === primary) return undefined;
  let res: Awaited<ReturnType<FederationForwarding['forward']>>;
  try {
    res = await forwarding.forward(forwarding.primary, {
      method: request.method,
      path: forwardedPath(request),
      body:
        request.body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(request.body)),
      timeoutMs: forwardTimeoutMs,
    });
  } catch (err) {
    const e = IsthmusError.from(err);
    if (e.code !== 'unavailable') throw e;
    throw new IsthmusError(
      'unavailable',
      `config entries are written in the primary datacenter ${forwarding.primary}, which is unreachable now; nothing was written (${e.message})`,
    );
  }
  // Read-your-writes: answer once this datacenter holds the write (bounded; see §6c).
  if (res.status < 300 && res.replicatedIndex > 0)
    await forwarding.replicated(res.run, res.replicatedIndex, replicatedWithinMs);
  return reply.status(res.status).type(res.contentType).send(res.body);
}
