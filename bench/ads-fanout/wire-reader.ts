/**
 * Just enough protobuf reading for the client workers to pick the fields they need (type_url,
 * nonce, resource names, one port) out of a response without decoding it into objects: the
 * workers share the machine's cores with the server under test and must stay cheap, so fields are
 * walked in place with no object per field.
 */
import { xdsTypeUrlAt } from '../../src/xds/types.js';

/**
 * The field `nextField` read last: its number, wire type, varint value, and where its bytes are.
 */
let fieldNo = 0;
let fieldWire = 0;
let fieldValue = 0;
let fieldStart = 0;
let fieldEnd = 0;

function readVarint(buf: Uint8Array, pos: number): number {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const byte = buf[pos++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      fieldEnd = pos; // where the varint ended; callers read it before the next call
      return value;
    }
    scale *= 128;
  }
}

/** Reads the field starting at `pos` (sets field*); returns where the next one starts. */
function nextField(buf: Uint8Array, pos: number, end: number): number {
  const tag = readVarint(buf, pos);
  fieldNo = Math.floor(tag / 8);
  fieldWire = tag & 7;
  pos = fieldEnd;
  if (fieldWire === 0) {
    fieldValue = readVarint(buf, pos);
    fieldStart = pos;
  } else if (fieldWire === 2) {
    fieldValue = readVarint(buf, pos);
    fieldStart = fieldEnd;
    fieldEnd = fieldStart + fieldValue;
  } else if (fieldWire === 1 || fieldWire === 5) {
    fieldValue = 0;
    fieldStart = pos;
    fieldEnd = pos + (fieldWire === 1 ? 8 : 4);
  } else throw new Error(`unsupported wire type ${fieldWire}`);
  if (fieldEnd > end) throw new Error('message overruns its bounds');
  return fieldEnd;
}

/**
 * Finds the first field numbered `no` in `buf[start, end)` and leaves it in field*; false if
 * absent.
 */
function findField(buf: Uint8Array, no: number, start: number, end: number): boolean {
  for (let pos = start; pos < end; ) {
    pos = nextField(buf, pos, end);
    if (fieldNo === no) return true;
  }
  return false;
}

/** A resource in a response: its name and where its message bytes are. */
export interface ResourceRef {
  readonly name: string;
  /** Delta: the resource's version ('' in SotW responses). */
  readonly version: string;
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

const text = (buf: Buffer, start: number, end: number) => buf.toString('utf8', start, end);

/**
 * The resource message inside an Any at `[anyStart, anyEnd)`. Every resource type the benchmark
 * serves names itself in field 1 (name / cluster_name); `name` is used when already known.
 */
function resourceInAny(
  buf: Buffer,
  anyStart: number,
  anyEnd: number,
  name: string | undefined,
  version = '',
): ResourceRef {
  const found = findField(buf, 2, anyStart, anyEnd);
  const start = found ? fieldStart : anyStart;
  const end = found ? fieldEnd : anyStart;
  if (name !== undefined) return { name, version, start, end };
  const found1 = findField(buf, 1, start, end);
  return { name: found1 ? text(buf, fieldStart, fieldEnd) : '', version, start, end };
}

/** Delta `Resource { version = 1; resource = 2 (Any); name = 3 }` at `[start, end)`. */
function deltaResource(buf: Buffer, start: number, end: number): ResourceRef {
  let anyStart = 0;
  let anyEnd = 0;
  let name = '';
  let version = '';
  for (let pos = start; pos < end; ) {
    pos = nextField(buf, pos, end);
    if (fieldNo === 1) version = text(buf, fieldStart, fieldEnd);
    else if (fieldNo === 2) [anyStart, anyEnd] = [fieldStart, fieldEnd];
    else if (fieldNo === 3) name = text(buf, fieldStart, fieldEnd);
  }
  return resourceInAny(buf, anyStart, anyEnd, name, version);
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
  for (let pos = 0; pos < buf.length; ) {
    pos = nextField(buf, pos, buf.length);
    const [start, end] = [fieldStart, fieldEnd];
    if (fieldNo === 1) versionInfo = text(buf, start, end);
    else if (fieldNo === 4) typeUrl = xdsTypeUrlAt(buf, start, end) ?? text(buf, start, end);
    else if (fieldNo === 5) nonce = text(buf, start, end);
    else if (fieldNo === 6) removed.push(text(buf, start, end));
    else if (fieldNo === 2)
      resources.push(
        delta ? deltaResource(buf, start, end) : resourceInAny(buf, start, end, undefined),
      );
  }
  return { typeUrl, nonce, versionInfo, resources, removed };
}

/**
 * Port of the first endpoint of a ClusterLoadAssignment: endpoints(2) → lb_endpoints(2) →
 * endpoint(1) → address(1) → socket_address(1) → port_value(3).
 */
export function firstEndpointPort(buf: Buffer, r: ResourceRef): number | undefined {
  let start = r.start;
  let end = r.end;
  for (const no of [2, 2, 1, 1, 1, 3]) {
    if (!findField(buf, no, start, end)) return undefined;
    [start, end] = [fieldStart, fieldEnd];
  }
  return fieldWire === 0 ? fieldValue : undefined;
}
