/**
 * The benchmarks' gRPC message framing (bench/shared/grpc-frame-decoder.ts): DATA chunks do not
 * follow message boundaries, so the decoder must give back the same messages however the bytes
 * are cut.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { frameMessage, GrpcFrameDecoder } from '../../bench/shared/grpc-frame-decoder.js';

function decodeAll(chunks: readonly Buffer[], limit = 1 << 20): Buffer[] {
  const decoder = new GrpcFrameDecoder(limit);
  const out: Buffer[] = [];
  for (const c of chunks) decoder.push(c, (m) => out.push(Buffer.from(m)));
  return out;
}

/** `bytes` cut at the given offsets (sorted, deduplicated, within range). */
function cut(bytes: Buffer, at: readonly number[]): Buffer[] {
  const points = [...new Set(at.map((a) => a % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    chunks.push(bytes.subarray(from, p));
    from = p;
  }
  return chunks;
}

describe('GrpcFrameDecoder', () => {
  it('gives back every message, in order, however the stream is cut into chunks', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (messages, at) => {
          const wire = Buffer.concat(messages.map((m) => frameMessage(Buffer.from(m))));
          const got = decodeAll(cut(wire, at));
          expect(got.map((m) => m.toString('hex'))).toEqual(
            messages.map((m) => Buffer.from(m).toString('hex')),
          );
        },
      ),
    );
  });

  it('holds a message split across chunks until its last byte arrives', () => {
    const wire = frameMessage(Buffer.from('hello'));
    const decoder = new GrpcFrameDecoder(100);
    const got: string[] = [];
    decoder.push(wire.subarray(0, 3), (m) => got.push(m.toString()));
    decoder.push(wire.subarray(3, 8), (m) => got.push(m.toString()));
    expect(got).toEqual([]);
    expect(decoder.idle).toBe(false);
    decoder.push(wire.subarray(8), (m) => got.push(m.toString()));
    expect(got).toEqual(['hello']);
    expect(decoder.idle).toBe(true);
  });

  it('refuses a compressed message, which this client never asks for', () => {
    const wire = frameMessage(Buffer.from('x'));
    wire[0] = 1;
    expect(() => decodeAll([wire])).toThrow(/compressed/);
  });

  it('refuses a message over the limit before buffering it', () => {
    const prefix = Buffer.from([0, 0, 0, 1, 0]); // 256 bytes announced
    expect(() => decodeAll([prefix], 255)).toThrow(/256 bytes over the 255-byte limit/);
  });
});
