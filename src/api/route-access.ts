import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import type { ApiScope } from '../acl/index.js';

/**
 * Who may call a route once `--http-token` is set (issue 18, "every route declares its scope").
 * The operator (`--http-token`, or an API token with scope `operator`) may call every route; the
 * fields add the callers that may as well. Declared where the route is registered, as
 * `{ config: { access } }` (`withAccess`); a route without one stops the server from starting
 * (`requireRouteAccess`).
 */
export interface RouteAccess {
  /** Any caller, with or without a token (probes, catalog reads, CA roots). */
  readonly anyone?: true;
  /** `read` tokens (GET routes only: a read token never changes anything). */
  readonly read?: true;
  /** `peering` tokens. */
  readonly peering?: true;
  /**
   * `service:<name>` tokens, when this says the request acts on `<name>`: the service the request
   * targets, or undefined when it targets no single service (or nothing that exists).
   */
  readonly service?: ServiceTarget;
}

/** Runs after the body is parsed (a registration names its service in the body). */
export type ServiceTarget = (request: FastifyRequest) => string | undefined;

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

export const anyone: RouteAccess = { anyone: true };
export const operatorOnly: RouteAccess = {};
export const readers: RouteAccess = { read: true };

/** The route option that declares `access`. */
export function withAccess(access: RouteAccess): { config: { access: RouteAccess } } {
  return { config: { access } };
}

const readMethods = new Set(['GET', 'HEAD']);

/**
 * A registered route and the access it declares (undefined: none, which `requireRouteAccess`
 * refuses).
 */
export interface DeclaredRoute {
  readonly method: string;
  readonly url: string;
  readonly access: RouteAccess | undefined;
}

const routesByApp = new WeakMap<FastifyInstance, DeclaredRoute[]>();

/** Records every route registered on `app` from now on (src/api/http.ts calls it first). */
export function trackRoutes(app: FastifyInstance): void {
  const routes: DeclaredRoute[] = [];
  routesByApp.set(app, routes);
  app.addHook('onRoute', (route: RouteOptions) => {
    for (const method of [route.method].flat())
      routes.push({ method, url: route.url, access: route.config?.access });
  });
}

/** Every route registered on `app` since `trackRoutes`, in registration order. */
export function declaredRoutes(app: FastifyInstance): readonly DeclaredRoute[] {
  return routesByApp.get(app) ?? [];
}

/**
 * No route left unprotected: once every plugin has registered its routes, a route that declares
 * no access, or opens a write to read tokens, makes `ready()` (and so `listen()`) fail, and the
 * server refuses to start.
 */
export function requireRouteAccess(app: FastifyInstance): void {
  app.addHook('onReady', async () => {
    const problems = declaredRoutes(app).flatMap(({ method, url, access }) =>
      !access
        ? [`${method} ${url} declares no access`]
        : access.read && !readMethods.has(method)
          ? [`${method} ${url} opens a write to read tokens`]
          : [],
    );
    if (problems.length > 0)
      throw new Error(`HTTP routes (src/api/route-access.ts): ${problems.join('; ')}`);
  });
}

/** Whether `scope` may call a route with `access`; `target` is the service the request acts on. */
export function scopeAllows(
  scope: ApiScope,
  access: RouteAccess,
  target: string | undefined,
): boolean {
  switch (scope.kind) {
    case 'operator':
      return true;
    case 'read':
      return access.read === true || access.anyone === true;
    case 'peering':
      return access.peering === true || access.anyone === true;
    case 'service':
      return access.anyone === true || (target !== undefined && target === scope.service);
  }
}

/** The scopes that may call a route, narrowest first: what a 403 names. */
export function scopesFor(access: RouteAccess, target: string | undefined): string[] {
  return [
    ...(access.service && target !== undefined ? [`service:${target}`] : []),
    ...(access.peering ? ['peering'] : []),
    ...(access.read ? ['read'] : []),
    'operator',
  ];
}
