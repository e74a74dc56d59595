/**
 * Just enough protobuf reading for the client workers to pick the fields they need (type_url,
 * nonce, resource names, one port) out of a response without decoding it into objects: the
 * workers share the machine's cores with the server under test and must stay cheap.
 */

/** A field of a message: its number and wire type; `value` for varints, `start`/`end` for bytes. */
export interface WireField {
  readonly no: number;
  readonly wire: number;
  readonly value: number;
  readonly start: number;
  readonly end: number;
}

function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const byte = buf[pos++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, pos];
    scale *= 128;
  }
}

/** The fields of the message in `buf[start, end)`, in wire order. */
export function readFields(buf: Uint8Array, start = 0, end = buf.length): WireField[] {
  const out: WireField[] = [];
  let pos = start;
  while (pos < end) {
    const [tag, afterTag] = readVarint(buf, pos);
    const no = Math.floor(tag / 8);
    const wire = tag & 7;
    pos = afterTag;
    if (wire === 0) {
      const [value, next] = readVarint(buf, pos);
      out.push({ no, wire, value, start: pos, end: next });
      pos = next;
    } else if (wire === 2) {
      const [len, next] = readVarint(buf, pos);
      out.push({ no, wire, value: len, start: next, end: next + len });
      pos = next + len;
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      out.push({ no, wire, value: 0, start: pos, end: pos + size });
      pos += size;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  if (pos !== end) throw new Error('message overruns its bounds');
  return out;
}

/** The first field numbered `no`, following a path of nested message fields. */
export function fieldAt(buf: Uint8Array, path: readonly number[], start = 0, end = buf.length): WireField | undefined {
  let field: WireField | undefined;
  for (const no of path) {
    field = readFields(buf, start, end).find((f) => f.no === no);
    if (!field) return undefined;
    start = field.start;
    end = field.end;
  }
  return field;
}

export function text(buf: Buffer, f: WireField): string {
  return buf.toString('utf8', f.start, f.end);
}

/** A resource in a response: its name and where its message bytes are. */
export interface ResourceRef {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

export interface ParsedResponse {
  readonly typeUrl: string;
  readonly nonce: string;
  readonly versionInfo: string;
  readonly resources: readonly ResourceRef[];
  readonly removed: readonly string[];
}

/** Every resource type the benchmark serves names itself in field 1 (name / cluster_name). */
function resourceInAny(buf: Buffer, anyStart: number, anyEnd: number, name?: string): ResourceRef {
  const value = readFields(buf, anyStart, anyEnd).find((f) => f.no === 2);
  const start = value?.start ?? anyStart;
  const end = value?.end ?? anyStart;
  if (name !== undefined) return { name, start, end };
  const nameField = readFields(buf, start, end).find((f) => f.no === 1);
  return { name: nameField ? text(buf, nameField) : '', start, end };
}

/**
 * `DiscoveryResponse { version_info = 1; resources = 2 (Any); type_url = 4; nonce = 5 }` or
 * `DeltaDiscoveryResponse { system_version_info = 1; resources = 2 (Resource { resource = 2 (Any);
 * name = 3 }); type_url = 4; nonce = 5; removed_resources = 6 }`.
 */
export function parseResponse(buf: Buffer, delta: boolean): ParsedResponse {
  let typeUrl = '';
  let nonce = '';
  let versionInfo = '';
  const resources: ResourceRef[] = [];
  const removed: string[] = [];
  for (const f of readFields(buf)) {
    if (f.no === 1) versionInfo = text(buf, f);
    else if (f.no === 4) typeUrl = text(buf, f);
    else if (f.no === 5) nonce = text(buf, f);
    else if (f.no === 6) removed.push(text(buf, f));
    else if (f.no === 2 && !delta) resources.push(resourceInAny(buf, f.start, f.end));
    else if (f.no === 2) {
      const inner = readFields(buf, f.start, f.end);
      const any = inner.find((x) => x.no === 2);
      const name = inner.find((x) => x.no === 3);
      resources.push(resourceInAny(buf, any?.start ?? 0, any?.end ?? 0, name ? text(buf, name) : ''));
    }
  }
  return { typeUrl, nonce, versionInfo, resources, removed };
}

/**
 * Port of the first endpoint of a ClusterLoadAssignment: endpoints(2) → lb_endpoints(2) →
 * endpoint(1) → address(1) → socket_address(1) → port_value(3).
 */
export function firstEndpointPort(buf: Buffer, r: ResourceRef): number | undefined {
  return fieldAt(buf, [2, 2, 1, 1, 1, 3], r.start, r.end)?.value;
}
