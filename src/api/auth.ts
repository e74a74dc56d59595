import type { FastifyInstance } from 'fastify';
import { presentedToken, tokensEqual } from '../acl/http-token.js';

/**
 * HTTP API access (`--http-token`). With a token set, every write (any method but GET, HEAD and
 * OPTIONS) and every read of peering, ACL, CA, xDS status or troubleshooting endpoints (CA roots
 * excepted: they are public) must carry it as `Authorization: Bearer <token>` or
 * `X-Isthmus-Token: <token>`. Catalog, health and config reads, probes and metrics stay open. Without a token nothing is checked (the server only
 * starts that way on loopback, or with --insecure-http: see config/http-access.ts).
 */
const readMethods = new Set(['GET', 'HEAD', 'OPTIONS']);
const secretReads = [
  /^\/v1\/peerings?(\/|$)/,
  /^\/v1\/acl(\/|$)/,
  /^\/v1\/connect\/ca(\/|$)/,
  /^\/v1\/xds(\/|$)/,
  /^\/v1\/troubleshoot(\/|$)/,
];
const publicReads = [/^\/v1\/connect\/ca\/roots\/?$/];

/** Whether a request needs the token; `path` is the matched route pattern when there is one. */
export function requiresToken(method: string, path: string): boolean {
  if (!readMethods.has(method.toUpperCase())) return true;
  return secretReads.some((re) => re.test(path)) && !publicReads.some((re) => re.test(path));
}

const hint =
  'send it as "Authorization: Bearer <token>" or "X-Isthmus-Token: <token>" (CLI: --token or ISTHMUS_HTTP_TOKEN)';

/**
 * Installs the check as a root `onRequest` hook, so it covers every route, including those other
 * modules register later. It runs before body parsing: a refused request is never parsed.
 */
export function installHttpAuth(app: FastifyInstance, token: string | undefined): void {
  if (!token) return;
  app.addHook('onRequest', async (request, reply) => {
    // The matched route pattern, so percent-encoding or a trailing slash cannot dodge the path rules.
    const path = request.routeOptions.url ?? request.url.split('?')[0] ?? '/';
    if (!requiresToken(request.method, path)) return;
    const presented = presentedToken(request);
    if (presented !== undefined && tokensEqual(presented, token)) return;
    const why =
      presented === undefined
        ? 'this request needs the HTTP API token'
        : 'the HTTP API token is not valid';
    await reply.status(403).send({ error: `Permission denied: ${why}; ${hint}` });
  });
}
