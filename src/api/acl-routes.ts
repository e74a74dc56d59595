import type { FastifyInstance } from 'fastify';
import type { CreatedProxyToken, ProxyToken, ProxyTokens } from '../acl/index.js';
import { IsthmusError } from '../errors.js';
import { acceptJsonBodies } from './json-body.js';

export type AclRoutesSource = Pick<ProxyTokens, 'create' | 'list' | 'delete'>;

export interface ProxyTokenJson {
  readonly AccessorID: string;
  readonly ProxyID: string;
  readonly CreateTime: string;
}

export interface CreatedProxyTokenJson extends ProxyTokenJson {
  readonly SecretID: string;
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
 */
export function registerAclRoutes(app: FastifyInstance, tokens: AclRoutesSource): void {
  void app.register(async (scope) => {
    acceptJsonBodies(scope);
    scope.post('/v1/acl/token', async (request) =>
      createdJson(await tokens.create(proxyIdOf(request.body))),
    );
    scope.get('/v1/acl/tokens', async () => tokens.list().map(tokenJson));
    scope.delete<{ Params: { accessorId: string } }>(
      '/v1/acl/token/:accessorId',
      async (request) => {
        await tokens.delete(request.params.accessorId);
        return true;
      },
    );
  });
}

function proxyIdOf(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new IsthmusError(
      'invalid_argument',
      'the request body must be a JSON object like {"ProxyID": "web-sidecar-proxy"}',
    );
  }
  return (body as Record<string, unknown>).ProxyID;
}
