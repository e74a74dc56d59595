/**
 * Hand-assembled protobuf wire format for the hot path: a response is a small header plus the
 * cached, already-encoded resource fields concatenated, so the bytes of a resource are produced
 * once and shared by every proxy that receives it (docs/architecture.md §7 rule 13).
 */
const WIRE_LEN = 2;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, offset: number, n: number): number {
  while (n >= 0x80) {
    buf[offset++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[offset++] = n;
  return offset;
}

/** One length-delimited field: tag, length, payload. */
export function lenField(fieldNumber: number, payload: Uint8Array): Buffer {
  const tag = (fieldNumber << 3) | WIRE_LEN;
  const out = Buffer.allocUnsafe(varintSize(tag) + varintSize(payload.length) + payload.length);
  let o = writeVarint(out, 0, tag);
  o = writeVarint(out, o, payload.length);
  out.set(payload, o);
  return out;
}

export function stringField(fieldNumber: number, value: string): Buffer {
  return value === '' ? Buffer.alloc(0) : lenField(fieldNumber, Buffer.from(value, 'utf8'));
}

/** `google.protobuf.Any { type_url = 1; value = 2; }` */
export function encodeAny(typeUrl: string, value: Uint8Array): Buffer {
  return Buffer.concat([stringField(1, typeUrl), lenField(2, value)]);
}

/** `envoy.service.discovery.v3.Resource { version = 1; resource = 2; name = 3; }` */
export function encodeDeltaResource(name: string, version: string, anyBytes: Uint8Array): Buffer {
  return Buffer.concat([stringField(1, version), lenField(2, anyBytes), stringField(3, name)]);
}

/** The type_url field (4) is the same bytes for every response of a type: encoded once. */
const typeUrlFields = new Map<string, Buffer>();
function typeUrlField(typeUrl: string): Buffer {
  let field = typeUrlFields.get(typeUrl);
  if (!field) typeUrlFields.set(typeUrl, (field = stringField(4, typeUrl)));
  return field;
}

/**
 * `DiscoveryResponse { version_info = 1; resources = 2 (Any); type_url = 4; nonce = 5; }`.
 * `resourceFields` are pre-encoded field-2 entries from the cache.
 */
export function encodeSotwResponse(
  versionInfo: string,
  typeUrl: string,
  nonce: string,
  resourceFields: readonly Buffer[],
): Buffer {
  return Buffer.concat([
    stringField(1, versionInfo),
    ...resourceFields,
    typeUrlField(typeUrl),
    stringField(5, nonce),
  ]);
}

/**
 * A string field (tag `fieldNumber`, wire type 2) written at `offset`; returns the offset after it.
 */
function writeStringField(
  buf: Buffer,
  offset: number,
  fieldNumber: number,
  value: string,
  byteLength: number,
): number {
  offset = writeVarint(buf, offset, (fieldNumber << 3) | WIRE_LEN);
  offset = writeVarint(buf, offset, byteLength);
  // A short ASCII string (a nonce: one per response) is copied here; a call into the UTF-8
  // encoder costs more than the copy.
  if (byteLength === value.length && byteLength <= 32) {
    for (let i = 0; i < byteLength; i++) buf[offset + i] = value.charCodeAt(i);
    return offset + byteLength;
  }
  return offset + buf.write(value, offset, 'utf8');
}

const stringFieldSize = (fieldNumber: number, byteLength: number) =>
  byteLength === 0
    ? 0
    : varintSize((fieldNumber << 3) | WIRE_LEN) + varintSize(byteLength) + byteLength;

/**
 * `DeltaDiscoveryResponse { system_version_info = 1; resources = 2 (Resource); type_url = 4; nonce
 * = 5; removed_resources = 6; }`, written into one buffer: this runs once per stream per push.
 */
export function encodeDeltaResponse(
  typeUrl: string,
  nonce: string,
  resourceFields: readonly Buffer[],
  removed: readonly string[],
): Buffer {
  const typeField = typeUrlField(typeUrl);
  const nonceBytes = Buffer.byteLength(nonce, 'utf8');
  const removedBytes = removed.map((name) => Buffer.byteLength(name, 'utf8'));
  let size = typeField.length + stringFieldSize(5, nonceBytes);
  for (const f of resourceFields) size += f.length;
  for (const n of removedBytes) size += varintSize((6 << 3) | WIRE_LEN) + varintSize(n) + n;
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (const f of resourceFields) o += f.copy(out, o);
  o += typeField.copy(out, o);
  if (nonceBytes > 0) o = writeStringField(out, o, 5, nonce, nonceBytes);
  removed.forEach((name, i) => {
    o = writeStringField(out, o, 6, name, removedBytes[i]!);
  });
  return out;
}
