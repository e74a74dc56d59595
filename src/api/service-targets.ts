import type { FastifyRequest } from 'fastify';
import { parseRegistration } from '../catalog/registration.js';
import type { ServiceInstance } from '../catalog/types.js';
import type { ServiceTarget } from './route-access.js';

/**
 * The service a request acts on, for `service:<name>` tokens (src/api/route-access.ts). A service
 * owns its typical instances and its sidecars: connect-proxies named `<name>-sidecar-proxy` whose
 * DestinationServiceName is `<name>`. Gateways and anything that does not exist belong to no one
 * but the operator.
 */
type Owned = Pick<ServiceInstance, 'name' | 'kind' | 'proxy'>;

export function ownerOf(instance: Owned | undefined): string | undefined {
  if (!instance) return undefined;
  if (instance.kind === 'typical') return instance.name;
  const destination = instance.proxy?.destinationServiceName;
  if (instance.kind === 'connect-proxy' && instance.name === `${destination}-sidecar-proxy`)
    return destination;
  return undefined;
}

export interface InstanceLookup {
  instance(id: string): Owned | undefined;
}

/** The owner of the instance named by the route parameter `param` (an instance ID). */
export function instanceTarget(catalog: InstanceLookup, param: string): ServiceTarget {
  return (request) => ownerOf(catalog.instance(paramOf(request, param)));
}

/** The owner of the instance that holds the check named by `:checkId`. */
export function checkTarget(catalog: {
  checkOwner(checkId: string): Owned | undefined;
}): ServiceTarget {
  return (request) => ownerOf(catalog.checkOwner(paramOf(request, 'checkId')));
}

/**
 * `PUT /v1/agent/service/register`: the owner of every instance the body registers (the service and
 * its `Connect` sidecar) and of every registered instance it would replace, when that is one
 * service. A body that does not parse is left to the handler's 400 when it names a typical service.
 */
export function registrationTarget(
  catalog: InstanceLookup & { readonly datacenter: string },
): ServiceTarget {
  return (request) => {
    const parsed = parseRegistration(request.body, { datacenter: catalog.datacenter });
    if (!parsed.ok) return unparsedName(request.body);
    const drafts = [
      parsed.value.service,
      ...(parsed.value.sidecar ? [parsed.value.sidecar.instance] : []),
    ];
    const owners = new Set<string | undefined>();
    for (const draft of drafts) {
      owners.add(ownerOf(draft));
      const replaced = catalog.instance(draft.id);
      if (replaced) owners.add(ownerOf(replaced));
    }
    return owners.size === 1 ? [...owners][0] : undefined;
  };
}

function unparsedName(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { Name, Kind } = body as Record<string, unknown>;
  return typeof Name === 'string' && (Kind === undefined || Kind === '') ? Name : undefined;
}

function paramOf(request: FastifyRequest, name: string): string {
  const value = (request.params as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' ? value : '';
}
