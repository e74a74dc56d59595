import type { FastifyInstance } from 'fastify';
import type { Catalog } from '../catalog/catalog.js';
import { invalidInput } from '../problems.js';
import { parseConfigKind } from '../catalog/config-entries.js';
import type { ConfigEntryKind } from '../catalog/types.js';
import { IsthmusError } from '../errors.js';
import { configEntryJson } from './consul-json.js';
import { acceptJsonBodies } from './json-body.js';
import { anyone, operatorOnly, withAccess } from './route-access.js';

type KindParams = { Params: { kind: string } };
type EntryParams = { Params: { kind: string; name: string } };

/**
 * Config entries, as Consul's `/v1/config`: `PUT /v1/config` (the body names Kind and Name; answers
 * `true`), `GET /v1/config/:kind` (sorted by name), `GET` and `DELETE /v1/config/:kind/:name`.
 * Deleting an entry that does not exist is a 404 (Consul answers 200), so a typo is noticed.
 * `peers`: the peerings a `service-resolver` may name (those not being deleted). Reads are open to
 * anyone (a service's token reads its own config that way); writes are the operator's.
 */
export function registerConfigRoutes(
  app: FastifyInstance,
  catalog: Catalog,
  opts: { readonly peers?: () => readonly string[] } = {},
): void {
  void app.register(async (scope) => {
    acceptJsonBodies(scope);
    scope.put('/v1/config', withAccess(operatorOnly), async (request) => {
      await catalog.putConfigEntry(request.body, opts);
      return true;
    });
    scope.get<KindParams>('/v1/config/:kind', withAccess(anyone), async (request) =>
      catalog.configRecords(kindOf(request.params.kind)).map(configEntryJson),
    );
    scope.get<EntryParams>('/v1/config/:kind/:name', withAccess(anyone), async (request) => {
      const kind = kindOf(request.params.kind);
      const record = catalog.configRecord(kind, request.params.name);
      if (!record)
        throw new IsthmusError(
          'not_found',
          `config entry ${kind}/${request.params.name} not found`,
        );
      return configEntryJson(record);
    });
    scope.delete<EntryParams>(
      '/v1/config/:kind/:name',
      withAccess(operatorOnly),
      async (request) => {
        await catalog.deleteConfigEntry(request.params.kind, request.params.name);
        return true;
      },
    );
  });
}

function kindOf(raw: string): ConfigEntryKind {
  const parsed = parseConfigKind(raw);
  if (!parsed.ok) throw invalidInput(parsed.error);
  return parsed.value;
}
