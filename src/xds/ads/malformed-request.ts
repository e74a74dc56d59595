/**
 * A request message the decoder could not read: bytes Envoy could never send (a node metadata
 * Struct nested past the decoder's recursion limit, a truncated field, a wrong wire type). grpc-js
 * answers a throwing deserializer with INTERNAL; the fault is the client's, so the deserializer
 * hands this to the session instead, which ends the stream with INVALID_ARGUMENT (issue 18).
 */
export class MalformedRequest {
  constructor(readonly reason: string) {}
}

/** `decode`, with what it throws turned into a MalformedRequest. */
export function decodeOrMalformed<T>(
  decode: (buf: Buffer) => T,
): (buf: Buffer) => T | MalformedRequest {
  return (buf) => {
    try {
      return decode(buf);
    } catch (err) {
      return new MalformedRequest(err instanceof Error ? err.message : String(err));
    }
  };
}
