import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type ApiScope, type ApiTokens, formatApiScope } from '../acl/index.js';
import { presentedToken, tokensEqual } from '../acl/http-token.js';
import { type RouteAccess, anyone, operatorOnly, scopeAllows, scopesFor } from './route-access.js';

/**
 * HTTP API access (`--http-token`, issue 18 "Scoped HTTP API access"). With a token set, every
 * route is checked against the access it declares (src/api/route-access.ts): the `--http-token`
 * token is the operator, API tokens (src/acl/api-tokens.ts) carry a scope. Tokens travel as
 * `Authorization: Bearer <token>` or `X-Isthmus-Token: <token>`. Without a token nothing is
 * checked (the server only starts that way on loopback, or with --insecure-http: see
 * config/http-access.ts).
 */
export interface HttpAuth {
  /** `--http-token`: the bootstrap operator token. */
  readonly token: string | undefined;
  readonly apiTokens?: Pick<ApiTokens, 'scopeOf'> | undefined;
  /**
   * Marks requests another datacenter forwarded (src/api/federation-forward.ts): the operator's
   * scope, limited there to the forwardable routes. Never leaves this process.
   */
  readonly forwardedMarker?: string | undefined;
}

const readMethods = new Set(['GET', 'HEAD', 'OPTIONS']);
const secretReads = [
  /^\/v1\/peerings?(\/|$)/,
  /^\/v1\/acl(\/|$)/,
  /^\/v1\/connect\/ca(\/|$)/,
  /^\/v1\/xds(\/|$)/,
  /^\/v1\/troubleshoot(\/|$)/,
];
const publicReads = [/^\/v1\/connect\/ca\/roots\/?$/];

/**
 * Whether a request to a path no route matches needs the operator (it is answered 404 otherwise):
 * every write, and reads under the prefixes of secret-bearing APIs, so a refusal does not depend
 * on whether the route exists.
 */
export function requiresToken(method: string, path: string): boolean {
  if (!readMethods.has(method.toUpperCase())) return true;
  return secretReads.some((re) => re.test(path)) && !publicReads.some((re) => re.test(path));
}

const hint =
  'send it as "Authorization: Bearer <token>" or "X-Isthmus-Token: <token>" (CLI: --token or ISTHMUS_HTTP_TOKEN)';

/**
 * Installs the check as root `onRequest` and `preHandler` hooks, so it covers every route,
 * including those other modules register later. `onRequest` runs before body parsing: a request
 * without a valid token, or whose token's scope cannot cover the route, is never parsed. Only a
 * `service:<name>` token on a route that acts on a service waits for `preHandler`, because a
 * registration names its service in the body.
 */
export function installHttpAuth(app: FastifyInstance, auth: HttpAuth): void {
  const { token } = auth;
  if (!token) return;
  const deferred = new WeakMap<FastifyRequest, ApiScope>();
  app.addHook('onRequest', async (request, reply) => {
    const access = accessOf(request);
    if (access.anyone) return;
    const presented = presentedToken(request);
    const scope =
      presented === undefined
        ? undefined
        : tokensEqual(presented, token) ||
            (auth.forwardedMarker !== undefined && tokensEqual(presented, auth.forwardedMarker))
          ? ({ kind: 'operator' } as const)
          : auth.apiTokens?.scopeOf(presented);
    if (!scope) {
      const why =
        presented === undefined
          ? 'this request needs the HTTP API token'
          : 'the HTTP API token is not valid';
      return reply.status(403).send({ error: `Permission denied: ${why}; ${hint}` });
    }
    if (scope.kind === 'service' && access.service) deferred.set(request, scope);
    else if (!scopeAllows(scope, access, undefined)) return refuse(reply, scope, access, undefined);
  });
  app.addHook('preHandler', async (request, reply) => {
    const scope = deferred.get(request);
    if (!scope) return;
    const access = accessOf(request);
    const target = access.service?.(request);
    if (!scopeAllows(scope, access, target)) return refuse(reply, scope, access, target);
  });
}

/** The declared access of the matched route; for an unmatched path, `requiresToken` decides. */
function accessOf(request: FastifyRequest): RouteAccess {
  const declared = request.routeOptions.config?.access;
  if (declared && request.routeOptions.url !== undefined) return declared;
  const path = request.url.split('?')[0] ?? '/';
  return requiresToken(request.method, path) ? operatorOnly : anyone;
}

/** 403 naming the scope the request needs (the narrowest first) and the one the token has. */
function refuse(
  reply: FastifyReply,
  scope: ApiScope,
  access: RouteAccess,
  target: string | undefined,
): FastifyReply {
  const needed = scopesFor(access, target);
  const options =
    needed.length > 1 ? `${needed.slice(0, -1).join(', ')} or ${needed.at(-1)}` : needed[0];
  return reply.status(403).send({
    error: `Permission denied: this request needs a token with scope ${options}; this token has scope ${formatApiScope(scope)}`,
    scope: needed[0],
  });
}
