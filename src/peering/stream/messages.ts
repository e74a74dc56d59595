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

/**
 * The largest ReplicationMessage either end writes, and the peering port's gRPC receive limit
 * (issue 14; docs/architecture.md §6 "Message size"). A resource that does not fit is split into
 * chunks (`Response.chunk`); the limit is never raised to make a big service fit.
 */
export const maxMessageBytes = 1024 * 1024;

/**
 * Bytes of a resource one message carries: the limit less room for the envelope (nonce, URL, ID,
 * chunk, protobuf tags), which `buildResponses` checks.
 */
export const maxChunkBytes = maxMessageBytes - 16 * 1024;

/**
 * The largest encoded resource a peer may replicate, whole once its chunks are assembled
 * (docs/architecture.md §6 "Claims"): what a receiver holds at most for one pending resource.
 */
export const maxResourceBytes = 32 * 1024 * 1024;

/** Chunks of one resource at most. */
export const maxChunks = Math.ceil(maxResourceBytes / maxChunkBytes);

/**
 * At most this many responses, and about this many bytes of them (a resource is never split), are
 * applied together by an importer (`ResourceSink.applyBatch`): a burst is one commit, and a batch
 * stays well inside the apply deadline. The dialer's HTTP/2 receive window is as large.
 */
export const importBatchResponses = 256;
export const importBatchBytes = 8 * 1024 * 1024;

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

/** One message ready to write, with its encoded size (the session counts bytes sent). */
export interface OutgoingMessage {
  readonly message: ReplicationMessage;
  readonly bytes: number;
}

const operationOf = {
  upsert: Operation.OPERATION_UPSERT,
  patch: Operation.OPERATION_PATCH,
  delete: Operation.OPERATION_DELETE,
} as const;

/**
 * The Response(s) carrying one change, all with `nonce`: one message, or the resource's encoded
 * bytes split in order over as many chunks as it needs of at most `maxChunkBytes` each. Throws
 * `resource_exhausted` for a resource over `maxResourceBytes` (it is not sent).
 */
export function buildResponses(
  nonce: string,
  resourceUrl: ResourceUrl,
  change: ResourceChange,
): OutgoingMessage[] {
  const base = {
    nonce,
    resourceUrl,
    resourceId: change.resourceId,
    operation: operationOf[change.operation],
  };
  if (change.operation === 'delete') return [outgoing({ ...base, resource: undefined })];
  const value = encodeResource(resourceUrl, change.resource);
  if (value.length <= maxChunkBytes)
    return [outgoing({ ...base, resource: { typeUrl: resourceUrl, value } })];
  const count = Math.ceil(value.length / maxChunkBytes);
  return Array.from({ length: count }, (_, index) =>
    outgoing({
      ...base,
      resource: {
        typeUrl: resourceUrl,
        value: value.subarray(index * maxChunkBytes, (index + 1) * maxChunkBytes),
      },
      chunk: { index, count },
    }),
  );
}

function outgoing(response: ReplicationMessage_Response): OutgoingMessage {
  const message: ReplicationMessage = { payload: { $case: 'response', value: response } };
  const bytes = ReplicationMessage.encode(message).finish().length;
  if (bytes > maxMessageBytes)
    throw new IsthmusError(
      'resource_exhausted',
      `a ${response.resourceUrl} response is ${bytes} bytes, more than the ${maxMessageBytes} a message may have (resource_id too long?)`,
    );
  return { message, bytes };
}

export const heartbeatMessage: ReplicationMessage = { payload: { $case: 'heartbeat', value: {} } };
export const terminatedMessage: ReplicationMessage = {
  payload: { $case: 'terminated', value: {} },
};

/** Encodes by the resource URL's type, so a source may emit plain objects without `$type`. */
function encodeResource(resourceUrl: ResourceUrl, resource: ReplicatedResource | undefined) {
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
  return value;
}

const receivedOperations = new Map([
  [Operation.OPERATION_UPSERT, 'upsert' as const],
  [Operation.OPERATION_PATCH, 'patch' as const],
]);

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
  const operation = receivedOperations.get(res.operation);
  if (!operation) return invalid(`unknown operation ${res.operation}`, 'operation');
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
    return ok({ resourceId: res.resourceId, operation, resource });
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
