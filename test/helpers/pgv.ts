// Checks encoded Envoy resources against the protoc-gen-validate `(validate.rules)` annotations in
// proto/, the same constraints Envoy enforces with `MessageUtil::validate` before accepting a
// config. Rule semantics follow protoc-gen-validate v1.0.4 (proto/validate/validate.proto and its
// Go templates, `templates/goshared`): proto3 scalars without presence are checked as if set (an
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
const NUMERIC = new Set([
  'float',
  'double',
  'int32',
  'int64',
  'uint32',
  'uint64',
  'sint32',
  'sint64',
  'fixed32',
  'fixed64',
  'sfixed32',
  'sfixed64',
]);
const BIG = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map(
    (n) => `.google.protobuf.${n}Value`,
  ),
);
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

/**
 * proto/ omits google/protobuf/* (buf supplies them): protobufjs bundles all but descriptor.proto.
 */
function loadRoot(): protobuf.Root {
  if (cachedRoot) return cachedRoot;
  const descriptor = createRequire(import.meta.url).resolve(
    'protobufjs/google/protobuf/descriptor.proto',
  );
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

/**
 * protobufjs turns repeated text-format entries (`in: 1 in: 2`) into an array, a single one not.
 */
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
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a byte string is any char 0x00-0xff
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
function rangeError<T extends number | bigint>(
  v: T,
  r: Rules,
  conv: (x: unknown) => T,
  show: (x: T) => string,
): string | undefined {
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

function checkOrdered<T extends number | bigint>(
  ctx: Ctx,
  at: string,
  v: T,
  r: Rules,
  conv: (x: unknown) => T,
  show: (x: T) => string,
): void {
  if (r.const !== undefined && v !== conv(r.const))
    err(ctx, at, `must equal ${show(conv(r.const))}`);
  const range = rangeError(v, r, conv, show);
  if (range) err(ctx, at, range);
  const allowed = list(r.in).map(conv);
  if (allowed.length > 0 && !allowed.includes(v))
    err(ctx, at, `must be in [${allowed.map(show).join(', ')}]`);
  if (list(r.not_in).map(conv).includes(v))
    err(ctx, at, `must not be in [${list(r.not_in).join(', ')}]`);
}

function checkNumber(ctx: Ctx, kind: string, raw: unknown, r: Rules, at: string): void {
  const conv = BIG.has(kind)
    ? toBig
    : kind === 'float'
      ? (x: unknown) => Math.fround(Number(x))
      : (x: unknown) => Number(x);
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
    if (diff > nanosOf(r.within))
      err(ctx, at, `must be within ${showDuration(nanosOf(r.within))} of now`);
  }
}

// ---- strings and bytes ------------------------------------------------------------------------

// PGV templates/goshared/well_known.go; the non-strict form is shared by names and values.
const HEADER_NAME = /^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: PGV's rules exclude control chars
const HEADER_VALUE = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: PGV's rules exclude control chars
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
  return (
    at > 0 &&
    addr.length <= 254 &&
    local.length <= 64 &&
    !/\s/.test(local) &&
    isHostname(addr.slice(at + 1))
  );
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

const wellKnown =
  (ok: (s: string) => boolean, what: string): Check<string> =>
  (s, want) =>
    want !== true || ok(s) ? undefined : `must be a valid ${what}`;

const STRING_CHECKS: ReadonlyArray<readonly [string, Check<string>]> = [
  ['const', (s, w) => (s === w ? undefined : `must equal ${quote(w)}`)],
  ['len', (s, w) => (codePoints(s) === Number(w) ? undefined : `must be ${w} characters`)],
  [
    'min_len',
    (s, w) => (codePoints(s) >= Number(w) ? undefined : `must be at least ${w} characters`),
  ],
  [
    'max_len',
    (s, w) => (codePoints(s) <= Number(w) ? undefined : `must be at most ${w} characters`),
  ],
  ['len_bytes', (s, w) => (Buffer.byteLength(s) === Number(w) ? undefined : `must be ${w} bytes`)],
  [
    'min_bytes',
    (s, w) => (Buffer.byteLength(s) >= Number(w) ? undefined : `must be at least ${w} bytes`),
  ],
  [
    'max_bytes',
    (s, w) => (Buffer.byteLength(s) <= Number(w) ? undefined : `must be at most ${w} bytes`),
  ],
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
  if (header && !header.test(s))
    err(ctx, at, `must be a valid ${String(r.well_known_regex)} (strict: ${r.strict !== false})`);
}

const bytesIn = (b: Uint8Array, w: unknown) =>
  list(w).some((x) => Buffer.from(b).equals(toBytes(x)));
const BYTES_CHECKS: ReadonlyArray<readonly [string, Check<Uint8Array>]> = [
  [
    'const',
    (b, w) => (Buffer.from(b).equals(toBytes(w)) ? undefined : `must equal 0x${hexOf(toBytes(w))}`),
  ],
  ['len', (b, w) => (b.length === Number(w) ? undefined : `must be ${w} bytes`)],
  ['min_len', (b, w) => (b.length >= Number(w) ? undefined : `must be at least ${w} bytes`)],
  ['max_len', (b, w) => (b.length <= Number(w) ? undefined : `must be at most ${w} bytes`)],
  [
    'pattern',
    (b, w) =>
      regex(String(w)).test(Buffer.from(b).toString('utf8'))
        ? undefined
        : `must match pattern ${quote(w)}`,
  ],
  [
    'prefix',
    (b, w) =>
      hexOf(b).startsWith(hexOf(toBytes(w))) ? undefined : 'must start with the given prefix',
  ],
  [
    'suffix',
    (b, w) => (hexOf(b).endsWith(hexOf(toBytes(w))) ? undefined : 'must end with the given suffix'),
  ],
  [
    'contains',
    (b, w) =>
      Buffer.from(b).includes(Buffer.from(toBytes(w))) ? undefined : 'must contain the given bytes',
  ],
  ['in', (b, w) => (bytesIn(b, w) ? undefined : 'must be one of the allowed values')],
  ['not_in', (b, w) => (bytesIn(b, w) ? 'must not be one of the disallowed values' : undefined)],
  [
    'ip',
    (b, w) =>
      w !== true || b.length === 4 || b.length === 16 ? undefined : 'must be a valid IP address',
  ],
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

function checkScalar(
  ctx: Ctx,
  slot: Slot,
  v: unknown,
  rules: Rules | null | undefined,
  at: string,
): void {
  const typed = typeRules(rules);
  if (!typed) return;
  const [kind, r] = typed;
  if (NUMERIC.has(kind)) checkNumber(ctx, kind, v, r, at);
  else if (kind === 'string') checkString(ctx, String(v), r, at);
  else if (kind === 'bytes') checkBytes(ctx, toBytes(v), r, at);
  else if (kind === 'bool' && r.const !== undefined && v !== r.const)
    err(ctx, at, `must equal ${String(r.const)}`);
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
  if (allowed.length > 0 && !allowed.includes(url))
    err(ctx, at, `type URL must be in ${quote(allowed)}`);
  if (list(r?.not_in).includes(url))
    err(ctx, at, `type URL must not be in ${quote(list(r?.not_in))}`);
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

function checkEmbedded(
  ctx: Ctx,
  type: protobuf.Type,
  v: Msg | undefined,
  rules: Rules | null | undefined,
  at: string,
): void {
  const typed = typeRules(rules);
  const message = asRules(rules?.message);
  if (v === undefined) {
    if (message?.required === true || typed?.[1].required === true) err(ctx, at, 'is required');
    return;
  }
  if (message?.skip === true) return;
  if (type.fullName === '.google.protobuf.Any') checkAny(ctx, v, asRules(rules?.any), at);
  else if (type.fullName === '.google.protobuf.Duration')
    checkDuration(ctx, v, asRules(rules?.duration) ?? {}, at);
  else if (type.fullName === '.google.protobuf.Timestamp')
    checkTimestamp(ctx, v, asRules(rules?.timestamp) ?? {}, at);
  else if (WRAPPERS.has(type.fullName))
    checkScalar(ctx, slotOf(type.fields.value!), v.value, rules, at);
  else checkMessage(ctx, type, v, at);
}

function checkValue(
  ctx: Ctx,
  slot: Slot,
  v: unknown,
  rules: Rules | null | undefined,
  at: string,
): void {
  if (slot.resolved instanceof protobuf.Type)
    checkEmbedded(ctx, slot.resolved, (v ?? undefined) as Msg | undefined, rules, at);
  else checkScalar(ctx, slot, v, rules, at);
}

// ---- repeated and map fields ------------------------------------------------------------------

function uniqueKey(v: unknown): string {
  return v instanceof Uint8Array ? `b:${hexOf(v)}` : String(v);
}

function checkRepeated(
  ctx: Ctx,
  field: protobuf.Field,
  items: readonly unknown[],
  r: Rules | undefined,
  at: string,
): void {
  if (r?.ignore_empty === true && items.length === 0) return;
  if (r?.min_items !== undefined && items.length < Number(r.min_items))
    err(ctx, at, `must contain at least ${r.min_items} item(s)`);
  if (r?.max_items !== undefined && items.length > Number(r.max_items))
    err(ctx, at, `must contain at most ${r.max_items} item(s)`);
  const seen = new Set<string>();
  const itemRules = asRules(r?.items);
  items.forEach((item, i) => {
    const key = uniqueKey(item);
    if (r?.unique === true && seen.has(key))
      err(ctx, `${at}[${i}]`, 'repeats an earlier item; items must be unique');
    seen.add(key);
    checkValue(ctx, slotOf(field), item, itemRules, `${at}[${i}]`);
  });
}

/** Decoded maps are plain objects; protobufjs keys 64-bit map keys by an 8-char hash string. */
function mapKey(keyType: string, key: string): unknown {
  if (keyType === 'bool') return key === 'true';
  if (BIG.has(keyType)) {
    return protobuf.util.LongBits.fromHash(key)
      .toLong(keyType === 'uint64' || keyType === 'fixed64')
      .toString();
  }
  return keyType === 'string' ? key : Number(key);
}

function checkMap(
  ctx: Ctx,
  field: protobuf.MapField,
  entries: Msg,
  r: Rules | undefined,
  at: string,
): void {
  const keys = Object.keys(entries);
  if (r?.ignore_empty === true && keys.length === 0) return;
  if (r?.min_pairs !== undefined && keys.length < Number(r.min_pairs))
    err(ctx, at, `must contain at least ${r.min_pairs} pair(s)`);
  if (r?.max_pairs !== undefined && keys.length > Number(r.max_pairs))
    err(ctx, at, `must contain at most ${r.max_pairs} pair(s)`);
  for (const raw of keys) {
    const key = mapKey(field.keyType, raw);
    const entryAt = `${at}[${typeof key === 'string' ? quote(key) : String(key)}]`;
    checkScalar(
      ctx,
      { type: field.keyType, resolved: null },
      key,
      asRules(r?.keys),
      `${entryAt}.key`,
    );
    const value = entries[raw];
    if (value == null && r?.no_sparse === true)
      err(ctx, entryAt, 'value must not be unset (no_sparse)');
    else checkValue(ctx, slotOf(field), value, asRules(r?.values), entryAt);
  }
}

// ---- messages ---------------------------------------------------------------------------------

function slotOf(field: protobuf.FieldBase): Slot {
  const resolved = field.resolvedType;
  return {
    type: field.type,
    resolved:
      resolved instanceof protobuf.Type || resolved instanceof protobuf.Enum ? resolved : null,
  };
}

function checkField(ctx: Ctx, field: protobuf.Field, msg: Msg, at: string): void {
  const rules = fieldRules(field);
  const value = msg[field.name];
  if (field instanceof protobuf.MapField)
    return checkMap(ctx, field, (value ?? {}) as Msg, asRules(rules?.map), at);
  if (field.repeated)
    return checkRepeated(ctx, field, (value ?? []) as unknown[], asRules(rules?.repeated), at);
  const present = Object.hasOwn(msg, field.name) && value != null;
  const slot = slotOf(field);
  // PGV renders a oneof member's rules (even `required`) only inside the case that selects it.
  if (!present && field.partOf) return;
  if (slot.resolved instanceof protobuf.Type)
    return checkEmbedded(ctx, slot.resolved, present ? (value as Msg) : undefined, rules, at);
  // proto2 and proto3 `optional` scalars have presence too: rules apply only when set.
  if (!present && field.hasPresence) return;
  checkScalar(ctx, slot, value, rules, at);
}

function checkMessage(ctx: Ctx, type: protobuf.Type, msg: Msg, at: string): void {
  if (option(type, '(validate.disabled)') === true || option(type, '(validate.ignored)') === true)
    return;
  const prefix = at === '' ? '' : `${at}.`;
  for (const oneof of type.oneofsArray) {
    if (option(oneof, '(validate.required)') !== true) continue;
    if (!oneof.oneof.some((name) => Object.hasOwn(msg, name) && msg[name] != null)) {
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
export function validateAny(any: {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}): string[] {
  const name = any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1);
  return lookupType(name) ? validateMessage(name, any.value) : [];
}

/** Throws an Error listing every violation. */
export function assertValid(typeName: string, bytes: Uint8Array): void {
  const errors = validateMessage(typeName, bytes);
  if (errors.length > 0) {
    throw new Error(
      `${typeName} violates ${errors.length} validate.rules constraint(s):\n  ${errors.join('\n  ')}`,
    );
  }
}

// ---- proto3 JSON (Envoy bootstrap files) ------------------------------------------------------
// Envoy reads a JSON bootstrap with protobuf's JSON parser (`MessageUtil::loadFromJson`), which
// rejects unknown fields, accepts a field's proto name or its lowerCamel JSON name, and writes the
// well-known types in their canonical JSON forms (Duration "1.5s", Any with an inline "@type",
// Struct as a plain object, wrappers as bare values). protobufjs `fromObject` silently drops
// unknown keys and knows none of these forms, so the JSON is converted here, field by field.

type JsonObject = { readonly [key: string]: unknown };
interface JsonCtx {
  readonly typeName: string;
  readonly errors: string[];
}

const MAX_DURATION_SECONDS = 315_576_000_000n;
const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);
const jsonFieldCache = new WeakMap<protobuf.Type, ReadonlyMap<string, protobuf.Field>>();

function jsonErr(ctx: JsonCtx, at: string, message: string): void {
  ctx.errors.push(`${ctx.typeName}: ${at === '' ? '(root)' : at}: ${message}`);
}

const isJsonObject = (v: unknown): v is JsonObject =>
  v !== null && typeof v === 'object' && !Array.isArray(v);
const jsonKind = (v: unknown) =>
  v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`;
const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

/**
 * A type's fields by proto name and by JSON name (`json_name`, or lowerCamel of the proto name).
 */
function jsonFields(type: protobuf.Type): ReadonlyMap<string, protobuf.Field> {
  let fields = jsonFieldCache.get(type);
  if (!fields) {
    const map = new Map<string, protobuf.Field>();
    for (const field of type.fieldsArray) {
      map.set(field.name, field);
      const jsonName = field.options?.json_name;
      map.set(typeof jsonName === 'string' ? jsonName : camel(field.name), field);
    }
    fields = map;
    jsonFieldCache.set(type, fields);
  }
  return fields;
}

function fromJsonInteger(ctx: JsonCtx, kind: string, v: unknown, at: string): unknown {
  const text = typeof v === 'number' ? String(v) : typeof v === 'string' ? v : undefined;
  if (text === undefined || !/^-?\d+$/.test(text))
    return jsonErr(
      ctx,
      at,
      `${kind} must be an integer number or string, got ${jsonKind(v)} ${quote(v)}`,
    );
  const n = BigInt(text);
  const [lo, hi] = INT32.has(kind)
    ? [-(2n ** 31n), 2n ** 31n - 1n]
    : UINT32.has(kind)
      ? [0n, 2n ** 32n - 1n]
      : kind === 'uint64' || kind === 'fixed64'
        ? [0n, 2n ** 64n - 1n]
        : [-(2n ** 63n), 2n ** 63n - 1n];
  if (n < lo || n > hi) return jsonErr(ctx, at, `${text} is out of range for ${kind}`);
  return BIG.has(kind) ? text : Number(n);
}

function fromJsonScalar(ctx: JsonCtx, kind: string, v: unknown, at: string): unknown {
  if (kind === 'string')
    return typeof v === 'string' ? v : jsonErr(ctx, at, `must be a string, got ${jsonKind(v)}`);
  if (kind === 'bool')
    return typeof v === 'boolean'
      ? v
      : jsonErr(ctx, at, `must be true or false, got ${jsonKind(v)}`);
  if (kind === 'bytes') {
    if (typeof v === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(v))
      return new Uint8Array(Buffer.from(v, 'base64'));
    return jsonErr(ctx, at, 'must be a base64 string');
  }
  if (kind === 'float' || kind === 'double') {
    if (typeof v === 'number') return v;
    if (
      typeof v === 'string' &&
      (['NaN', 'Infinity', '-Infinity'].includes(v) ||
        (v.trim() !== '' && Number.isFinite(Number(v))))
    )
      return Number(v);
    return jsonErr(ctx, at, `${kind} must be a number, got ${jsonKind(v)}`);
  }
  if (NUMERIC.has(kind)) return fromJsonInteger(ctx, kind, v, at);
  return jsonErr(ctx, at, `unsupported scalar type ${kind}`);
}

function fromJsonEnum(ctx: JsonCtx, e: protobuf.Enum, v: unknown, at: string): unknown {
  if (e.fullName === '.google.protobuf.NullValue' && v === null) return 0;
  if (typeof v === 'string')
    return (
      e.values[v] ??
      jsonErr(ctx, at, `${quote(v)} is not a ${e.name} value (${Object.keys(e.values).join(', ')})`)
    );
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  return jsonErr(ctx, at, `must be a ${e.name} name or number, got ${jsonKind(v)}`);
}

function fromJsonDuration(ctx: JsonCtx, v: unknown, at: string): unknown {
  const m = typeof v === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(v) : null;
  if (!m) return jsonErr(ctx, at, `a Duration must be a string like "1.5s", got ${quote(v)}`);
  const seconds = BigInt(m[2]!);
  if (seconds > MAX_DURATION_SECONDS) return jsonErr(ctx, at, `Duration ${v} is out of range`);
  const sign = m[1] ? -1 : 1;
  const nanos = Number((m[3] ?? '').padEnd(9, '0'));
  return { seconds: String(BigInt(sign) * seconds), nanos: sign * nanos };
}

function fromJsonTimestamp(ctx: JsonCtx, v: unknown, at: string): unknown {
  const m =
    typeof v === 'string'
      ? /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(v)
      : null;
  const ms = m ? Date.parse(`${m[1]}${m[3]}`) : NaN;
  if (!m || Number.isNaN(ms))
    return jsonErr(ctx, at, `a Timestamp must be an RFC 3339 string, got ${quote(v)}`);
  return { seconds: String(ms / 1000), nanos: Number((m[2] ?? '').padEnd(9, '0')) };
}

function fromJsonValue(ctx: JsonCtx, v: unknown, at: string): unknown {
  if (v === null) return { null_value: 0 };
  if (typeof v === 'number') return { number_value: v };
  if (typeof v === 'string') return { string_value: v };
  if (typeof v === 'boolean') return { bool_value: v };
  if (Array.isArray(v))
    return { list_value: { values: v.map((item, i) => fromJsonValue(ctx, item, `${at}[${i}]`)) } };
  if (isJsonObject(v)) return { struct_value: fromJsonStruct(ctx, v, at) };
  return jsonErr(ctx, at, `${jsonKind(v)} is not a JSON value`);
}

function fromJsonStruct(ctx: JsonCtx, v: unknown, at: string): unknown {
  if (!isJsonObject(v)) return jsonErr(ctx, at, `a Struct must be an object, got ${jsonKind(v)}`);
  return {
    fields: Object.fromEntries(
      Object.entries(v).map(([k, item]) => [k, fromJsonValue(ctx, item, `${at}[${quote(k)}]`)]),
    ),
  };
}

/** Types whose JSON form is not an object of their fields; an Any carries them under "value". */
function wellKnownFromJson(
  ctx: JsonCtx,
  type: protobuf.Type,
  v: unknown,
  at: string,
): { value: unknown } | undefined {
  const name = type.fullName;
  if (name === '.google.protobuf.Duration') return { value: fromJsonDuration(ctx, v, at) };
  if (name === '.google.protobuf.Timestamp') return { value: fromJsonTimestamp(ctx, v, at) };
  if (name === '.google.protobuf.Struct') return { value: fromJsonStruct(ctx, v, at) };
  if (name === '.google.protobuf.Value') return { value: fromJsonValue(ctx, v, at) };
  if (name === '.google.protobuf.ListValue') {
    if (!Array.isArray(v))
      return { value: jsonErr(ctx, at, `a ListValue must be an array, got ${jsonKind(v)}`) };
    return { value: { values: v.map((item, i) => fromJsonValue(ctx, item, `${at}[${i}]`)) } };
  }
  if (name === '.google.protobuf.FieldMask') {
    if (typeof v !== 'string')
      return { value: jsonErr(ctx, at, `a FieldMask must be a string, got ${jsonKind(v)}`) };
    const paths =
      v === '' ? [] : v.split(',').map((p) => p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
    return { value: { paths } };
  }
  if (WRAPPERS.has(name))
    return { value: { value: fromJsonScalar(ctx, type.fields.value!.type, v, at) } };
  return undefined;
}

/** An Any: `{"@type": url, ...fields}`, or `{"@type": url, "value": json}` for well-known types. */
function fromJsonAny(ctx: JsonCtx, v: unknown, at: string): unknown {
  if (!isJsonObject(v)) return jsonErr(ctx, at, `an Any must be an object, got ${jsonKind(v)}`);
  const url = v['@type'];
  if (typeof url !== 'string' || url === '') return jsonErr(ctx, at, 'an Any needs an "@type"');
  const name = url.slice(url.lastIndexOf('/') + 1);
  const inner = lookupType(name);
  // Envoy can only parse an Any whose type it links in; here, one whose fields proto/ can check.
  if (!inner)
    return jsonErr(ctx, at, `Any type ${name} is not in proto/, so its fields cannot be checked`);
  const innerAt = `${at}(${name})`;
  const { '@type': _url, ...rest } = v;
  let plain: unknown;
  const special = wellKnownFromJson(ctx, inner, rest.value, `${innerAt}.value`);
  if (special) {
    for (const key of Object.keys(rest))
      if (key !== 'value')
        jsonErr(
          ctx,
          `${innerAt}.${key}`,
          `unknown field (an Any of ${name} has only "@type" and "value")`,
        );
    plain = special.value;
  } else {
    plain = fromJsonMessage(ctx, inner, rest, innerAt);
  }
  if (plain === undefined) return undefined;
  try {
    return { type_url: url, value: inner.encode(inner.fromObject(plain as JsonObject)).finish() };
  } catch (e) {
    return jsonErr(ctx, innerAt, `cannot encode: ${(e as Error).message}`);
  }
}

function fromJsonSingle(ctx: JsonCtx, slot: Slot, v: unknown, at: string): unknown {
  const t = slot.resolved;
  if (t instanceof protobuf.Enum) return fromJsonEnum(ctx, t, v, at);
  if (!(t instanceof protobuf.Type)) return fromJsonScalar(ctx, slot.type, v, at);
  if (t.fullName === '.google.protobuf.Any') return fromJsonAny(ctx, v, at);
  const special = wellKnownFromJson(ctx, t, v, at);
  return special ? special.value : fromJsonMessage(ctx, t, v, at);
}

function fromJsonMapKey(
  ctx: JsonCtx,
  keyType: string,
  key: string,
  at: string,
): string | undefined {
  if (keyType === 'string') return key;
  if (keyType === 'bool')
    return key === 'true' || key === 'false'
      ? key
      : (jsonErr(ctx, at, 'a bool map key must be "true" or "false"') as undefined);
  return fromJsonInteger(ctx, keyType, key, at) === undefined ? undefined : key;
}

function fromJsonField(ctx: JsonCtx, field: protobuf.Field, v: unknown, at: string): unknown {
  const slot = slotOf(field);
  if (field instanceof protobuf.MapField) {
    if (!isJsonObject(v)) return jsonErr(ctx, at, `a map must be an object, got ${jsonKind(v)}`);
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(v)) {
      const entryAt = `${at}[${quote(key)}]`;
      const k = fromJsonMapKey(ctx, field.keyType, key, entryAt);
      const value =
        item === null
          ? jsonErr(ctx, entryAt, 'a map value must not be null')
          : fromJsonSingle(ctx, slot, item, entryAt);
      if (k !== undefined && value !== undefined) out[k] = value;
    }
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(v))
      return jsonErr(ctx, at, `a repeated field must be an array, got ${jsonKind(v)}`);
    return v
      .map((item, i) =>
        item === null
          ? jsonErr(ctx, `${at}[${i}]`, 'a list item must not be null')
          : fromJsonSingle(ctx, slot, item, `${at}[${i}]`),
      )
      .filter((item) => item !== undefined);
  }
  return fromJsonSingle(ctx, slot, v, at);
}

/** A message object as protobufjs `fromObject` takes it (proto field names, numbers for enums). */
function fromJsonMessage(
  ctx: JsonCtx,
  type: protobuf.Type,
  v: unknown,
  at: string,
): JsonObject | undefined {
  if (!isJsonObject(v))
    return jsonErr(ctx, at, `${type.name} must be an object, got ${jsonKind(v)}`) as undefined;
  const prefix = at === '' ? '' : `${at}.`;
  const fields = jsonFields(type);
  const out: Record<string, unknown> = {};
  const oneofs = new Map<string, string>();
  for (const [key, value] of Object.entries(v)) {
    const field = fields.get(key);
    if (!field) {
      jsonErr(ctx, `${prefix}${key}`, `unknown field of ${type.fullName.slice(1)}`);
      continue;
    }
    const fieldAt = `${prefix}${field.name}`;
    if (Object.hasOwn(out, field.name)) {
      jsonErr(ctx, fieldAt, 'set twice (by its proto name and its JSON name)');
      continue;
    }
    // null is "unset" in proto3 JSON, except for google.protobuf.Value, where it is NullValue.
    if (value === null && field.resolvedType?.fullName !== '.google.protobuf.Value') continue;
    if (field.partOf) {
      const other = oneofs.get(field.partOf.name);
      if (other) jsonErr(ctx, fieldAt, `oneof ${field.partOf.name} already set by ${other}`);
      oneofs.set(field.partOf.name, field.name);
    }
    const converted = fromJsonField(ctx, field, value, fieldAt);
    if (converted !== undefined) out[field.name] = converted;
  }
  return out;
}

/**
 * Checks a proto3 JSON document (as Envoy reads a bootstrap file) as `typeName`: every key must be
 * a field (proto name or JSON name) of its message, values must have the field's JSON form, every
 * Any's type must be in proto/ (its fields are checked too), and, once all that holds, the encoded
 * message must satisfy every `validate.rules` constraint. Returns every problem of the first stage
 * that has any (`<type>: <path>: <problem>`); empty when valid. Throws only for a type name not in
 * proto/.
 */
export function validateJson(typeName: string, json: unknown): string[] {
  const type = lookupType(typeName);
  if (!type) throw new Error(`pgv: unknown message type ${typeName}`);
  const ctx: JsonCtx = { typeName, errors: [] };
  const plain = fromJsonMessage(ctx, type, json, '');
  // Like Envoy, which parses before it validates: rules are checked on a well-formed document only
  // (a dropped misspelled field would otherwise also show up as a missing required one).
  if (plain === undefined || ctx.errors.length > 0) return ctx.errors;
  let bytes: Uint8Array;
  try {
    bytes = type.encode(type.fromObject(plain)).finish();
  } catch (e) {
    return [`${typeName}: cannot encode: ${(e as Error).message}`];
  }
  return validateMessage(typeName, bytes);
}
