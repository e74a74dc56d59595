import {
  ReplicationMessage,
  ReplicationMessage_Operation as Operation,
  type ReplicationMessage_Response,
} from '../../gen/isthmus/peering/v1/peering.js';
import { messageTypeRegistry } from '../../gen/typeRegistry.js';
import { IsthmusError } from '../../errors.js';
import { type Result, err, ok } from '../../result.js';
import type { StreamOpen, ReplicatedResource, ResourceChange } from './types.js';
import type { ResourceUrl } from './resources.js';
import { typePrefix } from '../../proto-any.js';

/** Pure builders and decoders for `ReplicationMessage`s. */

/** The largest encoded resource a peer may replicate (docs/architecture.md §6 "Claims"). */
export const maxResourceBytes = 4 * 1024 * 1024;

/**
 * The largest ReplicationMessage either end reads (issue 18): one Response carries one resource,
 * so a resource at its limit plus its envelope (nonce, URL, ID) fits. A service too big for it is
 * refused at the exporter, not sent: limits are not raised for big services.
 */
export const maxMessageBytes = maxResourceBytes + 64 * 1024;

export function buildOpen(open: StreamOpen): ReplicationMessage {
  return ReplicationMessage.fromPartial({
    payload: {
      $case: 'open',
      value: { peerId: open.peerId, streamSecret: open.streamSecret, remote: open.remote },
    },
  });
}

export function buildSubscribe(resourceUrl: string): ReplicationMessage {
  return ReplicationMessage.fromPartial({ payload: { $case: 'request', value: { resourceUrl } } });
}

/** The ACK (no error) or NACK of the response with `nonce`. */
export function buildAck(
  resourceUrl: string,
  nonce: string,
  error?: { code: number; message: string },
): ReplicationMessage {
  return ReplicationMessage.fromPartial({
    payload: { $case: 'request', value: { resourceUrl, responseNonce: nonce, error } },
  });
}

export function buildResponse(
  nonce: string,
  resourceUrl: ResourceUrl,
  change: ResourceChange,
): ReplicationMessage {
  const upsert = change.operation === 'upsert';
  return {
    payload: {
      $case: 'response',
      value: {
        nonce,
        resourceUrl,
        resourceId: change.resourceId,
        resource: upsert ? packResource(resourceUrl, change.resource) : undefined,
        operation: upsert ? Operation.OPERATION_UPSERT : Operation.OPERATION_DELETE,
      },
    },
  };
}

export const heartbeatMessage: ReplicationMessage = { payload: { $case: 'heartbeat', value: {} } };
export const terminatedMessage: ReplicationMessage = {
  payload: { $case: 'terminated', value: {} },
};

/** Encodes by the resource URL's type, so a source may emit plain objects without `$type`. */
function packResource(resourceUrl: ResourceUrl, resource: ReplicatedResource | undefined) {
  if (!resource) throw new IsthmusError('internal', `upsert of ${resourceUrl} without a resource`);
  const typeName = resourceUrl.slice(typePrefix.length);
  if (resource.$type !== undefined && resource.$type !== typeName) {
    throw new IsthmusError('internal', `a ${resource.$type} cannot be sent as ${resourceUrl}`);
  }
  const fns = messageTypeRegistry.get(typeName)!;
  const value = Buffer.from(fns.encode(resource).finish());
  if (value.length > maxResourceBytes)
    throw new IsthmusError(
      'resource_exhausted',
      `${resourceUrl} is ${value.length} bytes encoded, more than the ${maxResourceBytes} a peer accepts`,
    );
  return { typeUrl: resourceUrl, value };
}

/**
 * Turns a received Response into a change for the sink, or the invalid_argument IsthmusError
 * (naming the field) that becomes the NACK. Never throws.
 */
export function parseResponse(
  res: ReplicationMessage_Response,
): Result<ResourceChange, IsthmusError> {
  const invalid = (message: string, field: string) =>
    err(new IsthmusError('invalid_argument', message, field));
  if (!res.resourceId) return invalid('response without resource_id', 'resource_id');
  if (res.operation === Operation.OPERATION_DELETE)
    return ok({ resourceId: res.resourceId, operation: 'delete' });
  if (res.operation !== Operation.OPERATION_UPSERT)
    return invalid(`unknown operation ${res.operation}`, 'operation');
  if (!res.resource) return invalid('upsert without resource', 'resource');
  if (res.resource.value.length > maxResourceBytes)
    return invalid(
      `resource is ${res.resource.value.length} bytes, more than the ${maxResourceBytes} a replicated resource may have`,
      'resource',
    );
  if (res.resource.typeUrl !== res.resourceUrl) {
    return invalid(
      `resource type ${res.resource.typeUrl} does not match resource_url ${res.resourceUrl}`,
      'resource',
    );
  }
  const fns = messageTypeRegistry.get(res.resourceUrl.slice(typePrefix.length));
  if (!fns) return invalid(`unknown resource type ${res.resourceUrl}`, 'resource');
  try {
    const resource = fns.decode(res.resource.value) as ReplicatedResource;
    return ok({ resourceId: res.resourceId, operation: 'upsert', resource });
  } catch (e) {
    return invalid(
      `resource does not decode as ${res.resourceUrl}: ${(e as Error).message}`,
      'resource',
    );
  }
}

/** Which kind of message this is, for protocol errors and logs (never the content). */
export function payloadKind(msg: ReplicationMessage): string {
  return msg.payload?.$case ?? 'empty';
}
