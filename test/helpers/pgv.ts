// Checks encoded Envoy resources against the protoc-gen-validate `(validate.rules)` annotations in
// proto/, the same constraints Envoy enforces with `MessageUtil::validate` before accepting a config.
// Rule semantics follow protoc-gen-validate v1.0.4 (proto/validate/validate.proto and its Go
// templates, `templates/goshared`): proto3 scalars without presence are checked as if set (an
// unset scalar equals its default) unless `ignore_empty`; message-typed rules apply only when the
// message is set, apart from `required`.
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

type Rules = { readonly [key: string]: unknown };
type Msg = { readonly [key: string]: unknown };
type Check<T> = (value: T, want: unknown) => string | undefined;
/** A value's declared type: a field, a repeated element, or a map key/value. */
interface Slot {
  readonly type: string;
  readonly resolved: protobuf.Type | protobuf.Enum | null;
}
interface Ctx {
  readonly typeName: string;
  readonly errors: string[];
}

const protoDir = fileURLToPath(new URL('../../proto/', import.meta.url));
const NUMERIC = new Set(['float', 'double', 'int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64',
  'fixed32', 'fixed64', 'sfixed32', 'sfixed64']);
const BIG = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const WRAPPERS = new Set(['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String',
  'Bytes'].map((n) => `.google.protobuf.${n}Value`));
const NANOS = 1_000_000_000n;

// ---- loading ----------------------------------------------------------------------------------

let cachedRoot: protobuf.Root | undefined;
const typeCache = new Map<string, protobuf.Type | null>();
const rulesCache = new WeakMap<protobuf.ReflectionObject, Rules | null>();

function protoFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return protoFiles(full);
    return e.name.endsWith('.proto') ? [full] : [];
  });
}

/** proto/ omits google/protobuf/* (buf supplies them): protobufjs bundles all but descriptor.proto. */
function loadRoot(): protobuf.Root {
  if (cachedRoot) return cachedRoot;
  const descriptor = createRequire(import.meta.url).resolve('protobufjs/google/protobuf/descriptor.proto');
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (target === 'google/protobuf/descriptor.proto') return descriptor;
    if (target.startsWith('google/protobuf/') || path.isAbsolute(target)) return target;
    return path.join(protoDir, target);
  };
  root.loadSync(protoFiles(protoDir), { keepCase: true });
  root.resolveAll();
  cachedRoot = root;
  return root;
}

function lookupType(name: string): protobuf.Type | null {
  let type = typeCache.get(name);
  if (type === undefined) {
    const found = name === '' ? null : loadRoot().lookup(name);
    type = found instanceof protobuf.Type ? found : null;
    typeCache.set(name, type);
  }
  return type;
}

function option(obj: protobuf.ReflectionObject, name: string): unknown {
  for (const opt of obj.parsedOptions ?? []) if (name in opt) return opt[name];
  return undefined;
}

function fieldRules(field: protobuf.Field): Rules | null {
  let rules = rulesCache.get(field);
  if (rules === undefined) {
    rules = asRules(option(field, '(validate.rules)')) ?? null;
    rulesCache.set(field, rules);
  }
  return rules;
}

// ---- small value helpers ----------------------------------------------------------------------

function asRules(v: unknown): Rules | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Rules) : undefined;
}

/** protobufjs turns repeated text-format entries (`in: 1 in: 2`) into an array, a single one not. */
function list(v: unknown): unknown[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

function toBig(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  return BigInt(String(v)); // Long and decimal strings
}

function toBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  const s = String(v); // text-format bytes literals are byte strings
  return Buffer.from(s, /^[\x00-\xff]*$/.test(s) ? 'latin1' : 'utf8');
}

const quote = (v: unknown) => JSON.stringify(v);
const codePoints = (s: string) => [...s].length;
const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

const regexCache = new Map<string, RegExp>();
function regex(pattern: string): RegExp {
  let re = regexCache.get(pattern);
  if (!re) {
    try {
      re = new RegExp(pattern, 'u'); // RE2 syntax; Envoy's patterns are within the common subset
    } catch {
      re = new RegExp(pattern);
    }
    regexCache.set(pattern, re);
  }
  return re;
}

function err(ctx: Ctx, at: string, message: string): void {
  ctx.errors.push(`${ctx.typeName}: ${at}: ${message}`);
}

// ---- numbers, durations, timestamps -----------------------------------------------------------

/** PGV's lt/lte/gt/gte: when the upper bound is not above the lower one the range is exclusive. */
function rangeError<T extends number | bigint>(v: T, r: Rules, conv: (x: unknown) => T,
  show: (x: T) => string): string | undefined {
  const loIncl = r.gte !== undefined;
  const hiIncl = r.lte !== undefined;
  const lo = loIncl ? conv(r.gte) : r.gt !== undefined ? conv(r.gt) : undefined;
  const hi = hiIncl ? conv(r.lte) : r.lt !== undefined ? conv(r.lt) : undefined;
  const above = lo === undefined || (loIncl ? v >= lo : v > lo);
  const below = hi === undefined || (hiIncl ? v <= hi : v < hi);
  if (lo === undefined || hi === undefined) {
    if (!above) return `must be ${loIncl ? '>=' : '>'} ${show(lo as T)}`;
    if (!below) return `must be ${hiIncl ? '<=' : '<'} ${show(hi as T)}`;
    return undefined;
  }
  if (hi > lo) {
    if (above && below) return undefined;
    return `must be inside range ${loIncl ? '[' : '('}${show(lo)}, ${show(hi)}${hiIncl ? ']' : ')'}`;
  }
  if (above || below) return undefined;
  return `must be outside range ${hiIncl ? '(' : '['}${show(hi)}, ${show(lo)}${loIncl ? ')' : ']'}`;
}

function checkOrdered<T extends number | bigint>(ctx: Ctx, at: string, v: T, r: Rules,
  conv: (x: unknown) => T, show: (x: T) => string): void {
  if (r.const !== undefined && v !== conv(r.const)) err(ctx, at, `must equal ${show(conv(r.const))}`);
  const range = rangeError(v, r, conv, show);
  if (range) err(ctx, at, range);
  const allowed = list(r.in).map(conv);
  if (allowed.length > 0 && !allowed.includes(v)) err(ctx, at, `must be in [${allowed.map(show).join(', ')}]`);
  if (list(r.not_in).map(conv).includes(v)) err(ctx, at, `must not be in [${list(r.not_in).join(', ')}]`);
}

function checkNumber(ctx: Ctx, kind: string, raw: unknown, r: Rules, at: string): void {
  const conv = BIG.has(kind) ? toBig
    : kind === 'float' ? (x: unknown) => Math.fround(Number(x)) : (x: unknown) => Number(x);
  const v = conv(raw);
  if (r.ignore_empty === true && (v === 0 || v === 0n)) return;
  checkOrdered<number | bigint>(ctx, at, v, r, conv, String);
}

function nanosOf(d: unknown): bigint {
  const m = asRules(d) ?? {};
  return toBig(m.seconds ?? 0) * NANOS + toBig(m.nanos ?? 0);
}

const showDuration = (n: bigint) => `${Number(n) / 1e9}s`;
const showTime = (n: bigint) => new Date(Number(n / 1_000_000n)).toISOString();

function checkDuration(ctx: Ctx, d: Msg, r: Rules, at: string): void {
  checkOrdered(ctx, at, nanosOf(d), r, nanosOf, showDuration);
}

function checkTimestamp(ctx: Ctx, t: Msg, r: Rules, at: string): void {
  const v = nanosOf(t);
  checkOrdered(ctx, at, v, r, nanosOf, showTime);
  const now = BigInt(Date.now()) * 1_000_000n;
  if (r.lt_now === true && !(v < now)) err(ctx, at, 'must be before now');
  if (r.gt_now === true && !(v > now)) err(ctx, at, 'must be after now');
  if (r.within !== undefined) {
    const diff = v > now ? v - now : now - v;
    if (diff > nanosOf(r.within)) err(ctx, at, `must be within ${showDuration(nanosOf(r.within))} of now`);
  }
}

// ---- strings and bytes ------------------------------------------------------------------------

// PGV templates/goshared/well_known.go; the non-strict form is shared by names and values.
const HEADER_NAME = /^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$/;
const HEADER_VALUE = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
const HEADER_LOOSE = /^[^\u0000\u000A\u000D]*$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** PGV `_validateHostname`: an optional trailing dot, <= 253 bytes, labels of 1..63 LDH chars. */
function isHostname(s: string): boolean {
  if (s.length > 253) return false;
  const labels = s.replace(/\.$/, '').split('.');
  return labels.every((l) => l.length <= 63 && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i.test(l));
}

/** Go `mail.ParseAddress` accepts `Name <addr>`; PGV then limits the local part and host. */
function isEmail(s: string): boolean {
  const addr = /<([^<>]*)>\s*$/.exec(s)?.[1] ?? s;
  const at = addr.lastIndexOf('@');
  const local = addr.slice(0, at);
  return at > 0 && addr.length <= 254 && local.length <= 64 && !/\s/.test(local)
    && isHostname(addr.slice(at + 1));
}

function parsesAsUrl(s: string, base?: string): boolean {
  try {
    new URL(s, base);
    return true;
  } catch {
    return false;
  }
}

function headerRegex(which: unknown, strict: boolean): RegExp | undefined {
  if (which === undefined || which === 'UNKNOWN' || which === 0) return undefined;
  if (!strict) return HEADER_LOOSE;
  if (which === 'HTTP_HEADER_NAME' || which === 1) return HEADER_NAME;
  if (which === 'HTTP_HEADER_VALUE' || which === 2) return HEADER_VALUE;
  return undefined;
}

const wellKnown = (ok: (s: string) => boolean, what: string): Check<string> =>
  (s, want) => (want !== true || ok(s) ? undefined : `must be a valid ${what}`);

const STRING_CHECKS: ReadonlyArray<readonly [string, Check<string>]> = [
  ['const', (s, w) => (s === w ? undefined : `must equal ${quote(w)}`)],
  ['len', (s, w) => (codePoints(s) === Number(w) ? undefined : `must be ${w} characters`)],
  ['min_len', (s, w) => (codePoints(s) >= Number(w) ? undefined : `must be at least ${w} characters`)],
  ['max_len', (s, w) => (codePoints(s) <= Number(w) ? undefined : `must be at most ${w} characters`)],
  ['len_bytes', (s, w) => (Buffer.byteLength(s) === Number(w) ? undefined : `must be ${w} bytes`)],
  ['min_bytes', (s, w) => (Buffer.byteLength(s) >= Number(w) ? undefined : `must be at least ${w} bytes`)],
  ['max_bytes', (s, w) => (Buffer.byteLength(s) <= Number(w) ? undefined : `must be at most ${w} bytes`)],
  ['pattern', (s, w) => (regex(String(w)).test(s) ? undefined : `must match pattern ${quote(w)}`)],
  ['prefix', (s, w) => (s.startsWith(String(w)) ? undefined : `must start with ${quote(w)}`)],
  ['suffix', (s, w) => (s.endsWith(String(w)) ? undefined : `must end with ${quote(w)}`)],
  ['contains', (s, w) => (s.includes(String(w)) ? undefined : `must contain ${quote(w)}`)],
  ['not_contains', (s, w) => (s.includes(String(w)) ? `must not contain ${quote(w)}` : undefined)],
  ['in', (s, w) => (list(w).includes(s) ? undefined : `must be in ${quote(list(w))}`)],
  ['not_in', (s, w) => (list(w).includes(s) ? `must not be in ${quote(list(w))}` : undefined)],
  ['email', wellKnown(isEmail, 'email address')],
  ['hostname', wellKnown(isHostname, 'hostname')],
  ['ip', wellKnown((s) => isIP(s) !== 0, 'IP address')],
  ['ipv4', wellKnown(isIPv4, 'IPv4 address')],
  ['ipv6', wellKnown(isIPv6, 'IPv6 address')],
  ['uri', wellKnown((s) => /^[a-z][a-z0-9+.-]*:/i.test(s) && parsesAsUrl(s), 'absolute URI')],
  ['uri_ref', wellKnown((s) => parsesAsUrl(s, 'http://base.invalid/'), 'URI reference')],
  ['address', wellKnown((s) => isIP(s) !== 0 || isHostname(s), 'IP address or hostname')],
  ['uuid', wellKnown((s) => UUID.test(s), 'UUID')],
];

function checkString(ctx: Ctx, s: string, r: Rules, at: string): void {
  if (r.ignore_empty === true && s === '') return;
  for (const [key, check] of STRING_CHECKS) {
    const problem = r[key] === undefined ? undefined : check(s, r[key]);
    if (problem) err(ctx, at, problem);
  }
  const header = headerRegex(r.well_known_regex, r.strict !== false);
  if (header && !header.test(s)) err(ctx, at, `must be a valid ${String(r.well_known_regex)} (strict: ${r.strict !== false})`);
}

const bytesIn = (b: Uint8Array, w: unknown) => list(w).some((x) => Buffer.from(b).equals(toBytes(x)));
const BYTES_CHECKS: ReadonlyArray<readonly [string, Check<Uint8Array>]> = [
  ['const', (b, w) => (Buffer.from(b).equals(toBytes(w)) ? undefined : `must equal 0x${hexOf(toBytes(w))}`)],
  ['len', (b, w) => (b.length === Number(w) ? undefined : `must be ${w} bytes`)],
  ['min_len', (b, w) => (b.length >= Number(w) ? undefined : `must be at least ${w} bytes`)],
  ['max_len', (b, w) => (b.length <= Number(w) ? undefined : `must be at most ${w} bytes`)],
  ['pattern', (b, w) => (regex(String(w)).test(Buffer.from(b).toString('utf8')) ? undefined : `must match pattern ${quote(w)}`)],
  ['prefix', (b, w) => (hexOf(b).startsWith(hexOf(toBytes(w))) ? undefined : 'must start with the given prefix')],
  ['suffix', (b, w) => (hexOf(b).endsWith(hexOf(toBytes(w))) ? undefined : 'must end with the given suffix')],
  ['contains', (b, w) => (Buffer.from(b).includes(Buffer.from(toBytes(w))) ? undefined : 'must contain the given bytes')],
  ['in', (b, w) => (bytesIn(b, w) ? undefined : 'must be one of the allowed values')],
  ['not_in', (b, w) => (bytesIn(b, w) ? 'must not be one of the disallowed values' : undefined)],
  ['ip', (b, w) => (w !== true || b.length === 4 || b.length === 16 ? undefined : 'must be a valid IP address')],
  ['ipv4', (b, w) => (w !== true || b.length === 4 ? undefined : 'must be a valid IPv4 address')],
  ['ipv6', (b, w) => (w !== true || b.length === 16 ? undefined : 'must be a valid IPv6 address')],
];

function checkBytes(ctx: Ctx, b: Uint8Array, r: Rules, at: string): void {
  if (r.ignore_empty === true && b.length === 0) return;
  for (const [key, check] of BYTES_CHECKS) {
    const problem = r[key] === undefined ? undefined : check(b, r[key]);
    if (problem) err(ctx, at, problem);
  }
}

function checkEnum(ctx: Ctx, e: protobuf.Enum | null, v: number, r: Rules, at: string): void {
  if (r.defined_only === true && e && e.valuesById[v] === undefined) {
    err(ctx, at, `must be a defined ${e.name} value, got ${v}`);
  }
  checkOrdered(ctx, at, v, { const: r.const, in: r.in, not_in: r.not_in }, Number, String);
}

// ---- scalars, messages and well-known types ---------------------------------------------------

/** The single FieldRules `type` member set, ignoring the side-by-side `message` rules. */
function typeRules(rules: Rules | null | undefined): readonly [string, Rules] | undefined {
  for (const key in rules ?? {}) {
    const r = asRules(rules?.[key]);
    if (key !== 'message' && r) return [key, r];
  }
  return undefined;
}

function checkScalar(ctx: Ctx, slot: Slot, v: unknown, rules: Rules | null | undefined, at: string): void {
  const typed = typeRules(rules);
  if (!typed) return;
  const [kind, r] = typed;
  if (NUMERIC.has(kind)) checkNumber(ctx, kind, v, r, at);
  else if (kind === 'string') checkString(ctx, String(v), r, at);
  else if (kind === 'bytes') checkBytes(ctx, toBytes(v), r, at);
  else if (kind === 'bool' && r.const !== undefined && v !== r.const) err(ctx, at, `must equal ${String(r.const)}`);
  else if (kind === 'enum') {
    checkEnum(ctx, slot.resolved instanceof protobuf.Enum ? slot.resolved : null, Number(v), r, at);
  }
}

/**
 * PGV itself does not unpack Any, but Envoy validates a typed config when it converts it
 * (`MessageUtil::anyConvertAndValidate`), so known types are checked in place; unknown ones are
 * left alone.
 */
function checkAny(ctx: Ctx, any: Msg, r: Rules | undefined, at: string): void {
  const url = String(any.type_url ?? '');
  const allowed = list(r?.in);
  if (allowed.length > 0 && !allowed.includes(url)) err(ctx, at, `type URL must be in ${quote(allowed)}`);
  if (list(r?.not_in).includes(url)) err(ctx, at, `type URL must not be in ${quote(list(r?.not_in))}`);
  const name = url.slice(url.lastIndexOf('/') + 1);
  const type = lookupType(name);
  if (!type) return;
  let inner: Msg;
  try {
    inner = type.decode(toBytes(any.value ?? new Uint8Array())) as unknown as Msg;
  } catch (e) {
    err(ctx, at, `cannot decode ${name}: ${(e as Error).message}`);
    return;
  }
  checkMessage(ctx, type, inner, `${at}(${name})`);
}

function checkEmbedded(ctx: Ctx, type: protobuf.Type, v: Msg | undefined, rules: Rules | null | undefined,
  at: string): void {
  const typed = typeRules(rules);
  const message = asRules(rules?.message);
  if (v === undefined) {
    if (message?.required === true || typed?.[1].required === true) err(ctx, at, 'is required');
    return;
  }
  if (message?.skip === true) return;
  if (type.fullName === '.google.protobuf.Any') checkAny(ctx, v, asRules(rules?.any), at);
  else if (type.fullName === '.google.protobuf.Duration') checkDuration(ctx, v, asRules(rules?.duration) ?? {}, at);
  else if (type.fullName === '.google.protobuf.Timestamp') checkTimestamp(ctx, v, asRules(rules?.timestamp) ?? {}, at);
  else if (WRAPPERS.has(type.fullName)) checkScalar(ctx, slotOf(type.fields.value!), v.value, rules, at);
  else checkMessage(ctx, type, v, at);
}

function checkValue(ctx: Ctx, slot: Slot, v: unknown, rules: Rules | null | undefined, at: string): void {
  if (slot.resolved instanceof protobuf.Type) checkEmbedded(ctx, slot.resolved, (v ?? undefined) as Msg | undefined, rules, at);
  else checkScalar(ctx, slot, v, rules, at);
}

// ---- repeated and map fields ------------------------------------------------------------------

function uniqueKey(v: unknown): string {
  return v instanceof Uint8Array ? `b:${hexOf(v)}` : String(v);
}

function checkRepeated(ctx: Ctx, field: protobuf.Field, items: readonly unknown[], r: Rules | undefined,
  at: string): void {
  if (r?.ignore_empty === true && items.length === 0) return;
  if (r?.min_items !== undefined && items.length < Number(r.min_items)) err(ctx, at, `must contain at least ${r.min_items} item(s)`);
  if (r?.max_items !== undefined && items.length > Number(r.max_items)) err(ctx, at, `must contain at most ${r.max_items} item(s)`);
  const seen = new Set<string>();
  const itemRules = asRules(r?.items);
  items.forEach((item, i) => {
    const key = uniqueKey(item);
    if (r?.unique === true && seen.has(key)) err(ctx, `${at}[${i}]`, 'repeats an earlier item; items must be unique');
    seen.add(key);
    checkValue(ctx, slotOf(field), item, itemRules, `${at}[${i}]`);
  });
}

/** Decoded maps are plain objects; protobufjs keys 64-bit map keys by an 8-char hash string. */
function mapKey(keyType: string, key: string): unknown {
  if (keyType === 'bool') return key === 'true';
  if (BIG.has(keyType)) {
    return protobuf.util.LongBits.fromHash(key).toLong(keyType === 'uint64' || keyType === 'fixed64').toString();
  }
  return keyType === 'string' ? key : Number(key);
}

function checkMap(ctx: Ctx, field: protobuf.MapField, entries: Msg, r: Rules | undefined, at: string): void {
  const keys = Object.keys(entries);
  if (r?.ignore_empty === true && keys.length === 0) return;
  if (r?.min_pairs !== undefined && keys.length < Number(r.min_pairs)) err(ctx, at, `must contain at least ${r.min_pairs} pair(s)`);
  if (r?.max_pairs !== undefined && keys.length > Number(r.max_pairs)) err(ctx, at, `must contain at most ${r.max_pairs} pair(s)`);
  for (const raw of keys) {
    const key = mapKey(field.keyType, raw);
    const entryAt = `${at}[${typeof key === 'string' ? quote(key) : String(key)}]`;
    checkScalar(ctx, { type: field.keyType, resolved: null }, key, asRules(r?.keys), `${entryAt}.key`);
    const value = entries[raw];
    if (value == null && r?.no_sparse === true) err(ctx, entryAt, 'value must not be unset (no_sparse)');
    else checkValue(ctx, slotOf(field), value, asRules(r?.values), entryAt);
  }
}

// ---- messages ---------------------------------------------------------------------------------

function slotOf(field: protobuf.FieldBase): Slot {
  const resolved = field.resolvedType;
  return { type: field.type, resolved: resolved instanceof protobuf.Type || resolved instanceof protobuf.Enum ? resolved : null };
}

function checkField(ctx: Ctx, field: protobuf.Field, msg: Msg, at: string): void {
  const rules = fieldRules(field);
  const value = msg[field.name];
  if (field instanceof protobuf.MapField) return checkMap(ctx, field, (value ?? {}) as Msg, asRules(rules?.map), at);
  if (field.repeated) return checkRepeated(ctx, field, (value ?? []) as unknown[], asRules(rules?.repeated), at);
  const present = Object.prototype.hasOwnProperty.call(msg, field.name) && value != null;
  const slot = slotOf(field);
  // PGV renders a oneof member's rules (even `required`) only inside the case that selects it.
  if (!present && field.partOf) return;
  if (slot.resolved instanceof protobuf.Type) return checkEmbedded(ctx, slot.resolved, present ? (value as Msg) : undefined, rules, at);
  // proto2 and proto3 `optional` scalars have presence too: rules apply only when set.
  if (!present && field.hasPresence) return;
  checkScalar(ctx, slot, value, rules, at);
}

function checkMessage(ctx: Ctx, type: protobuf.Type, msg: Msg, at: string): void {
  if (option(type, '(validate.disabled)') === true || option(type, '(validate.ignored)') === true) return;
  const prefix = at === '' ? '' : `${at}.`;
  for (const oneof of type.oneofsArray) {
    if (option(oneof, '(validate.required)') !== true) continue;
    if (!oneof.oneof.some((name) => Object.prototype.hasOwnProperty.call(msg, name) && msg[name] != null)) {
      err(ctx, `${prefix}${oneof.name}`, `one of [${oneof.oneof.join(', ')}] is required`);
    }
  }
  for (const field of type.fieldsArray) checkField(ctx, field, msg, `${prefix}${field.name}`);
}

// ---- API --------------------------------------------------------------------------------------

/**
 * Decodes `bytes` as `typeName` (a full proto name, e.g. `envoy.config.cluster.v3.Cluster`) and
 * returns every `validate.rules` violation as `<type>: <snake_case path>: <problem>`; empty when
 * valid. proto/ is loaded once, on first use. Throws only for a type name not in proto/.
 */
export function validateMessage(typeName: string, bytes: Uint8Array): string[] {
  const type = lookupType(typeName);
  if (!type) throw new Error(`pgv: unknown message type ${typeName}`);
  const ctx: Ctx = { typeName, errors: [] };
  let msg: Msg;
  try {
    msg = type.decode(bytes) as unknown as Msg;
  } catch (e) {
    return [`${typeName}: cannot decode: ${(e as Error).message}`];
  }
  checkMessage(ctx, type, msg, '');
  return ctx.errors;
}

/** Validates a packed Any by its type URL; a type not in proto/ yields no errors. */
export function validateAny(any: { readonly typeUrl: string; readonly value: Uint8Array }): string[] {
  const name = any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1);
  return lookupType(name) ? validateMessage(name, any.value) : [];
}

/** Throws an Error listing every violation. */
export function assertValid(typeName: string, bytes: Uint8Array): void {
  const errors = validateMessage(typeName, bytes);
  if (errors.length > 0) {
    throw new Error(`${typeName} violates ${errors.length} validate.rules constraint(s):\n  ${errors.join('\n  ')}`);
  }
}
