import type { FastifyInstance } from 'fastify';
import {
  type ApiToken,
  type ApiTokens,
  type CreatedApiToken,
  type CreatedProxyToken,
  type ProxyToken,
  type ProxyTokens,
  formatApiScope,
} from '../acl/index.js';
import { IsthmusError } from '../errors.js';
import { acceptJsonBodies } from './json-body.js';
import { operatorOnly, withAccess } from './route-access.js';

export type AclRoutesSource = Pick<ProxyTokens, 'create' | 'list' | 'delete'>;
export type ApiTokensSource = Pick<ApiTokens, 'create' | 'list' | 'revoke'>;

export interface ProxyTokenJson {
  readonly AccessorID: string;
  readonly ProxyID: string;
  readonly CreateTime: string;
}

export interface CreatedProxyTokenJson extends ProxyTokenJson {
  readonly SecretID: string;
}

/** An HTTP API token as listed (`GET /v1/acl/api-tokens`): never its secret. */
export interface ApiTokenJson {
  readonly AccessorID: string;
  /** `operator`, `read`, `peering` or `service:<name>`. */
  readonly Scope: string;
  readonly Description: string;
  readonly CreateTime: string;
}

export interface CreatedApiTokenJson extends ApiTokenJson {
  readonly SecretID: string;
}

function apiTokenJson(t: ApiToken): ApiTokenJson {
  return {
    AccessorID: t.accessorId,
    Scope: formatApiScope(t.scope),
    Description: t.description,
    CreateTime: t.createTime,
  };
}

function createdApiTokenJson(t: CreatedApiToken): CreatedApiTokenJson {
  return { ...apiTokenJson(t), SecretID: t.secretId };
}

function tokenJson(t: ProxyToken): ProxyTokenJson {
  return { AccessorID: t.accessorId, ProxyID: t.proxyId, CreateTime: t.createTime };
}

function createdJson(t: CreatedProxyToken): CreatedProxyTokenJson {
  return { ...tokenJson(t), SecretID: t.secretId };
}

/**
 * Proxy tokens for xDS: `POST /v1/acl/token {ProxyID}` (the only response that carries the
 * SecretID), `GET /v1/acl/tokens`, `DELETE /v1/acl/token/:accessorId`. With `--http-token` all
 * of them need it (src/api/auth.ts).
 *
 * Scoped HTTP API tokens (issue 18), the same way: `POST /v1/acl/api-token {Scope, Description}`
 * (SecretID shown once), `GET /v1/acl/api-tokens`, `DELETE /v1/acl/api-token/:accessorId`. ACL
 * administration is the operator's only: a `read` token does not list tokens (as Consul keeps
 * `acl:read` apart from service and node reads).
 */
export function registerAclRoutes(
  app: FastifyInstance,
  tokens: AclRoutesSource,
  apiTokens?: ApiTokensSource,
): void {
  const operator = withAccess(operatorOnly);
  void app.register(async (scope) => {
    acceptJsonBodies(scope);
    scope.post('/v1/acl/token', operator, async (request) =>
      createdJson(await tokens.create(proxyIdOf(request.body))),
    );
    scope.get('/v1/acl/tokens', operator, async () => tokens.list().map(tokenJson));
    scope.delete<{ Params: { accessorId: string } }>(
      '/v1/acl/token/:accessorId',
      operator,
      async (request) => {
        await tokens.delete(request.params.accessorId);
        return true;
      },
    );
    if (apiTokens) registerApiTokenRoutes(scope, apiTokens);
  });
}

function registerApiTokenRoutes(scope: FastifyInstance, apiTokens: ApiTokensSource): void {
  const operator = withAccess(operatorOnly);
  scope.post('/v1/acl/api-token', operator, async (request) => {
    const body = jsonObject(request.body, '{"Scope": "service:web", "Description": "web deploys"}');
    return createdApiTokenJson(
      await apiTokens.create({ scope: body.Scope, description: body.Description }),
    );
  });
  scope.get('/v1/acl/api-tokens', operator, async () => apiTokens.list().map(apiTokenJson));
  scope.delete<{ Params: { accessorId: string } }>(
    '/v1/acl/api-token/:accessorId',
    operator,
    async (request) => {
      await apiTokens.revoke(request.params.accessorId);
      return true;
    },
  );
}

function proxyIdOf(body: unknown): unknown {
  return jsonObject(body, '{"ProxyID": "web-sidecar-proxy"}').ProxyID;
}

function jsonObject(body: unknown, example: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new IsthmusError(
      'invalid_argument',
      `the request body must be a JSON object like ${example}`,
    );
  }
  return body as Record<string, unknown>;
}
