/**
 * The server name (SNI) of a TLS ClientHello, read the way a mesh gateway's `tls_inspector` does
 * before any byte is forwarded (RFC 8446 §4.1.2, RFC 6066 §3). `parseClientHelloSni` never throws:
 * `{kind: 'more'}` asks for more bytes, `{kind: 'none'}` means a complete hello without SNI or not
 * TLS.
 */
export type SniResult =
  | { readonly kind: 'sni'; readonly serverName: string }
  | { readonly kind: 'none'; readonly reason: string }
  | { readonly kind: 'more' };

const handshakeRecord = 0x16;
const clientHello = 0x01;
const serverNameExtension = 0x0000;
const hostName = 0x00;
/** A record is at most 2^14 bytes of plaintext plus its 5-byte header. */
export const maxClientHelloBytes = 5 + 16_384;

export function parseClientHelloSni(buf: Buffer): SniResult {
  if (buf.length < 5) return { kind: 'more' };
  if (buf[0] !== handshakeRecord) return { kind: 'none', reason: 'not a TLS handshake record' };
  const recordEnd = 5 + buf.readUInt16BE(3);
  if (buf.length < recordEnd) return { kind: 'more' };
  const r = new Reader(buf.subarray(5, recordEnd));
  if (r.u8() !== clientHello) return { kind: 'none', reason: 'not a ClientHello' };
  r.skip(3 + 2 + 32); // handshake length, legacy_version, random
  r.skip(r.u8()); // legacy_session_id
  r.skip(r.u16()); // cipher_suites
  r.skip(r.u8()); // legacy_compression_methods
  if (r.failed || r.left() < 2) return { kind: 'none', reason: 'ClientHello without extensions' };
  const extensionsEnd = r.pos + 2 + r.u16();
  while (!r.failed && r.pos + 4 <= extensionsEnd) {
    const type = r.u16();
    const length = r.u16();
    if (type !== serverNameExtension) {
      r.skip(length);
      continue;
    }
    const listEnd = r.pos + 2 + r.u16();
    while (!r.failed && r.pos + 3 <= listEnd) {
      const nameType = r.u8();
      const name = r.bytes(r.u16());
      if (nameType === hostName && name) return { kind: 'sni', serverName: name.toString('ascii') };
    }
    break;
  }
  return {
    kind: 'none',
    reason: r.failed ? 'truncated ClientHello' : 'ClientHello without a server name',
  };
}

/** Bounds-checked big-endian reads; a read past the end sets `failed` instead of throwing. */
class Reader {
  pos = 0;
  failed = false;
  constructor(private readonly buf: Buffer) {}

  left(): number {
    return this.buf.length - this.pos;
  }

  private take(n: number): number {
    if (this.failed || n > this.left()) {
      this.failed = true;
      return -1;
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(): number {
    const at = this.take(1);
    return at < 0 ? 0 : this.buf.readUInt8(at);
  }

  u16(): number {
    const at = this.take(2);
    return at < 0 ? 0 : this.buf.readUInt16BE(at);
  }

  skip(n: number): void {
    this.take(n);
  }

  bytes(n: number): Buffer | undefined {
    const at = this.take(n);
    return at < 0 ? undefined : this.buf.subarray(at, at + n);
  }
}
