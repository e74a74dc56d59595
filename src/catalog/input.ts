import { isIP } from 'node:net';
import { dnsHostname, dnsLabel } from '../dns-names.js';

import type { Result } from '../result.js';
import type { FieldError, Problems } from '../problems.js';

export { type FieldError, Problems, describeError } from '../problems.js';

/**
 * Small readers for untrusted JSON (registrations, config entries). They never throw: every problem
 * is collected with the JSON path of the offending field (`Proxy.Upstreams[1].LocalBindPort`) and
 * what is allowed there, and the reader returns `undefined` for that field.
 */
export type Parsed<T> = Result<T, readonly FieldError[]>;

/** `base.key`, `base[i]`, or `key` at the root. */
export function at(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  return base === '' ? key : `${base}.${key}`;
}

export type JsonObject = Readonly<Record<string, unknown>>;

/** An object whose keys are all in `allowed`; unknown keys are errors naming the allowed ones. */
export function readObject(
  value: unknown,
  field: string,
  allowed: readonly string[],
  p: Problems,
): JsonObject | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return p.add(field, 'must be a JSON object');
  const obj = value as JsonObject;
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key))
      p.add(at(field, key), `unknown field (allowed here: ${allowed.join(', ')})`);
  }
  return obj;
}

/** An optional nested object (absent or null = `undefined`, no error). */
export function readOptionalObject(
  obj: JsonObject,
  key: string,
  base: string,
  allowed: readonly string[],
  p: Problems,
): JsonObject | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  return readObject(value, at(base, key), allowed, p);
}

export interface StringRule {
  readonly pattern?: RegExp;
  /** Says what the pattern allows, for the error message. */
  readonly patternText?: string;
  readonly maxLength?: number;
}

/** A string field; absent → `fallback` (or an error `required` when no fallback is given). */
export function readString(
  obj: JsonObject,
  key: string,
  base: string,
  p: Problems,
  fallback?: string,
  rule: StringRule = {},
): string | undefined {
  const field = at(base, key);
  const value = obj[key];
  if (value === undefined || value === null || value === '') {
    if (fallback !== undefined) return fallback;
    return p.add(field, `required${rule.patternText ? ` (${rule.patternText})` : ''}`);
  }
  return checkString(value, field, p, rule);
}

export function checkString(
  value: unknown,
  field: string,
  p: Problems,
  rule: StringRule = {},
): string | undefined {
  if (typeof value !== 'string')
    return p.add(field, `must be a string${rule.patternText ? ` (${rule.patternText})` : ''}`);
  if (rule.maxLength !== undefined && value.length > rule.maxLength)
    return p.add(field, `must be at most ${rule.maxLength} characters`);
  if (rule.pattern && !rule.pattern.test(value))
    return p.add(
      field,
      `${JSON.stringify(value)} is not allowed: ${rule.patternText ?? 'bad format'}`,
    );
  return value;
}

/** An integer in [min, max]; absent → `fallback` (or `required`). */
export function readInt(
  obj: JsonObject,
  key: string,
  base: string,
  p: Problems,
  min: number,
  max: number,
  fallback?: number,
): number | undefined {
  const field = at(base, key);
  const value = obj[key];
  if (value === undefined || value === null)
    return fallback !== undefined ? fallback : p.add(field, `required (an integer ${min}-${max})`);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    return p.add(field, `must be an integer ${min}-${max} (got ${JSON.stringify(value)})`);
  }
  return value;
}

export function readBool(
  obj: JsonObject,
  key: string,
  base: string,
  p: Problems,
  fallback: boolean,
): boolean | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean')
    return p.add(at(base, key), `must be true or false (got ${JSON.stringify(value)})`);
  return value;
}

/** One of `allowed`; absent or null → `fallback` (or `required`). */
export function readEnum<T extends string>(
  obj: JsonObject,
  key: string,
  base: string,
  p: Problems,
  allowed: readonly T[],
  fallback?: T,
): T | undefined {
  const field = at(base, key);
  const value = obj[key];
  const shown = allowed.map((a) => JSON.stringify(a)).join(', ');
  if (value === undefined || value === null)
    return fallback !== undefined ? fallback : p.add(field, `required (one of ${shown})`);
  const hit = allowed.find((a) => a === value);
  return hit !== undefined
    ? hit
    : p.add(field, `must be one of ${shown} (got ${JSON.stringify(value)})`);
}

/** An array (absent or null → []), each element read by `item`. */
export function readArray<T>(
  obj: JsonObject,
  key: string,
  base: string,
  p: Problems,
  item: (value: unknown, field: string) => T | undefined,
  maxItems = 1024,
): T[] {
  const field = at(base, key);
  const value = obj[key];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return p.add(field, 'must be a JSON array') ?? [];
  if (value.length > maxItems) return p.add(field, `must have at most ${maxItems} items`) ?? [];
  const out: T[] = [];
  value.forEach((v: unknown, i) => {
    const parsed = item(v, at(field, i));
    if (parsed !== undefined) out.push(parsed);
  });
  return out;
}

/** Names of services, namespaces, partitions and peers: they end up in SNIs and SPIFFE IDs. */
export const nameRule: StringRule = {
  pattern: dnsLabel,
  patternText: '1-63 lowercase letters, digits or "-", starting and ending with a letter or digit',
};

/** Service instance and check IDs: Envoy's node.id and URL path segments, so no '/' or spaces. */
export const idRule: StringRule = {
  pattern: /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/,
  patternText: '1-128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit',
};

const hostnamePattern = dnsHostname;

/** An IP address or a DNS hostname. */
export function checkAddress(value: unknown, field: string, p: Problems): string | undefined {
  const s = checkString(value, field, p);
  if (s === undefined) return undefined;
  if (isIP(s) !== 0 || hostnamePattern.test(s)) return s;
  return p.add(field, `${JSON.stringify(s)} is not an IP address or hostname`);
}

export function readAddress(
  obj: JsonObject,
  key: string,
  base: string,
  p: Problems,
  fallback?: string,
): string | undefined {
  const value = obj[key];
  if (value === undefined || value === null || value === '')
    return fallback !== undefined
      ? fallback
      : p.add(at(base, key), 'required (an IP address or hostname)');
  return checkAddress(value, at(base, key), p);
}

const metaKeyPattern = /^[A-Za-z0-9_-]+$/;

/**
 * Consul's metadata rules: ≤ 64 pairs, keys ≤ 128 chars of [A-Za-z0-9_-] not starting `consul-`
 * (except the `reserved` keys the caller allows), values ≤ 512.
 */
export function readMeta(
  obj: JsonObject,
  key: string,
  base: string,
  p: Problems,
  reserved: readonly string[] = [],
): Record<string, string> {
  const field = at(base, key);
  const value = obj[key];
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value))
    return p.add(field, 'must be a JSON object of string values') ?? {};
  const entries = Object.entries(value as JsonObject);
  if (entries.length > 64)
    return p.add(field, `must have at most 64 entries (got ${entries.length})`) ?? {};
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    const f = at(field, k);
    if (k.length > 128 || !metaKeyPattern.test(k))
      p.add(f, 'key must be 1-128 letters, digits, "_" or "-"');
    else if (k.startsWith('consul-') && !reserved.includes(k))
      p.add(f, 'keys starting "consul-" are reserved');
    else if (typeof v !== 'string') p.add(f, 'must be a string');
    else if (v.length > 512) p.add(f, 'must be at most 512 characters');
    else out[k] = v;
  }
  return out;
}
