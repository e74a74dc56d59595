/**
 * gRPC's length-prefixed message framing on an HTTP/2 stream (PROTOCOL-HTTP2 in grpc/grpc:
 * `Length-Prefixed-Message → Compressed-Flag Message-Length Message`, a 1-byte flag and a 4-byte
 * big-endian length). DATA frames do not follow message boundaries: one chunk may end inside a
 * prefix or a message, or carry several messages.
 */

/** The bytes before each message: the compressed flag and the message length. */
export const framePrefixBytes = 5;

/** `message` with its 5-byte prefix, uncompressed, in one buffer (one write, one DATA chunk). */
export function frameMessage(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(framePrefixBytes + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, framePrefixBytes);
  return out;
}

/**
 * Cuts a stream's DATA chunks into messages. A message that lies whole in one chunk is passed on as
 * a view of that chunk (no copy); one split across chunks is assembled in a buffer of its own.
 */
export class GrpcFrameDecoder {
  private readonly prefix = Buffer.alloc(framePrefixBytes);
  private prefixHave = 0;
  private body: Buffer | undefined;
  private bodyHave = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** True between messages: nothing of a started prefix or message is held. */
  get idle(): boolean {
    return this.prefixHave === 0 && this.body === undefined;
  }

  /**
   * Calls `onMessage` for every message `chunk` completes, in order. Throws on a compressed message
   * (this client never offers `grpc-accept-encoding`, so a server must not compress) or one over the
   * limit; the stream is unusable after that.
   */
  push(chunk: Buffer, onMessage: (message: Buffer) => void): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.body !== undefined) {
        const n = Math.min(this.body.length - this.bodyHave, chunk.length - at);
        chunk.copy(this.body, this.bodyHave, at, at + n);
        this.bodyHave += n;
        at += n;
        if (this.bodyHave === this.body.length) {
          const message = this.body;
          this.body = undefined;
          onMessage(message);
        }
      } else if (this.prefixHave === 0 && chunk.length - at >= framePrefixBytes) {
        const length = this.checkPrefix(chunk, at);
        at += framePrefixBytes;
        if (chunk.length - at >= length) {
          onMessage(chunk.subarray(at, at + length));
          at += length;
        } else this.startBody(length);
      } else {
        const n = Math.min(framePrefixBytes - this.prefixHave, chunk.length - at);
        chunk.copy(this.prefix, this.prefixHave, at, at + n);
        this.prefixHave += n;
        at += n;
        if (this.prefixHave < framePrefixBytes) return;
        this.prefixHave = 0;
        const length = this.checkPrefix(this.prefix, 0);
        if (length === 0) onMessage(Buffer.alloc(0));
        else this.startBody(length);
      }
    }
  }

  private startBody(length: number): void {
    this.body = Buffer.allocUnsafe(length);
    this.bodyHave = 0;
  }

  /** The message length the prefix at `at` announces, once the prefix is known to be valid. */
  private checkPrefix(buf: Buffer, at: number): number {
    const flag = buf[at]!;
    const length = buf.readUInt32BE(at + 1);
    if (flag === 1) throw new Error('compressed message, but no grpc-encoding was offered');
    if (flag !== 0) throw new Error(`invalid message prefix flag ${flag}`);
    if (length > this.maxMessageBytes)
      throw new Error(`message of ${length} bytes over the ${this.maxMessageBytes}-byte limit`);
    return length;
  }
}
