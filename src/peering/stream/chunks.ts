import type { ReplicationMessage_Response } from '../../gen/isthmus/peering/v1/peering.js';
import { IsthmusError } from '../../errors.js';
import { type Result, err, ok } from '../../result.js';
import { maxChunks, maxResourceBytes } from './messages.js';

interface Pending {
  readonly first: ReplicationMessage_Response;
  readonly count: number;
  readonly parts: Uint8Array[];
  bytes: number;
}

/**
 * Reassembles a chunked resource (docs/architecture.md §6 "Message size"). A sender writes the
 * chunks of one resource back to back under one nonce, so a receiver holds at most one resource
 * in progress: anything else arriving before its last chunk is a protocol error, and the partial
 * resource is dropped (an importer never applies half a service).
 */
export class ChunkAssembler {
  private pending: Pending | undefined;

  /**
   * The whole response once `res` completes it (at once for an unchunked one), `undefined` while
   * chunks are missing, or the invalid_argument error that NACKs `res`.
   */
  add(
    res: ReplicationMessage_Response,
  ): Result<ReplicationMessage_Response | undefined, IsthmusError> {
    const pending = this.pending;
    const chunk = res.chunk;
    if (!chunk) {
      this.pending = undefined;
      return pending
        ? this.invalid(`expected chunk ${pending.parts.length} of ${pending.first.resourceId}`)
        : ok(res);
    }
    if (chunk.count < 2 || chunk.count > maxChunks || chunk.index >= chunk.count)
      return this.invalid(`chunk ${chunk.index} of ${chunk.count}: count must be 2-${maxChunks}`);
    if (!res.resource) return this.invalid(`chunk ${chunk.index} without resource`);
    if (chunk.index === 0) {
      if (pending)
        return this.invalid(
          `chunk 0 of ${res.resourceId} before the last of ${pending.first.resourceId}`,
        );
      this.pending = { first: res, count: chunk.count, parts: [], bytes: 0 };
    } else if (!pending || !continues(pending, res)) {
      return this.invalid(`chunk ${chunk.index} of ${chunk.count} out of order`);
    }
    const current = this.pending!;
    current.parts.push(res.resource.value);
    current.bytes += res.resource.value.length;
    if (current.bytes > maxResourceBytes)
      return this.invalid(`chunked resource over ${maxResourceBytes} bytes`);
    if (current.parts.length < current.count) return ok(undefined);
    this.pending = undefined;
    const { first } = current;
    const value = Buffer.concat(current.parts);
    return ok({ ...first, resource: { typeUrl: res.resource.typeUrl, value }, chunk: undefined });
  }

  private invalid(message: string): Result<never, IsthmusError> {
    this.pending = undefined;
    return err(new IsthmusError('invalid_argument', message, 'chunk'));
  }
}

function continues(pending: Pending, res: ReplicationMessage_Response): boolean {
  const { first } = pending;
  return (
    res.nonce === first.nonce &&
    res.resourceUrl === first.resourceUrl &&
    res.resourceId === first.resourceId &&
    res.operation === first.operation &&
    res.chunk?.count === pending.count &&
    res.chunk.index === pending.parts.length &&
    res.resource?.typeUrl === first.resource?.typeUrl
  );
}
