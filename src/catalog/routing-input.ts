import { RE2JS } from 're2js';
import { parseDurationSeconds } from './checks.js';
import { type JsonObject, type Problems, at, readOptionalObject } from './input.js';
import type { HeaderModifiers } from './routing-types.js';

/**
 * Readers shared by `service-splitter` and `service-router` (docs/architecture.md §5b): durations,
 * header modifiers and regular expressions as Envoy takes them.
 */

/** A Go duration up to 1h (`"5s"`, `"500ms"`); absent, empty or `"0s"`: 0. */
export function readDurationMs(
  obj: JsonObject,
  key: string,
  base: string,
  p: Problems,
): number | undefined {
  const value = obj[key];
  if (value === undefined || value === null || value === '' || value === '0s') return 0;
  const seconds = typeof value === 'string' ? parseDurationSeconds(value) : undefined;
  if (seconds === undefined || seconds > 3600)
    return p.add(
      at(base, key),
      `must be a duration up to 1h such as "5s" or "500ms" (got ${JSON.stringify(value)})`,
    );
  return Math.round(seconds * 1000);
}

/** HTTP header names as Envoy accepts them in header mutations and matchers (RFC 9110 tokens). */
const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;

export function checkHeaderName(value: unknown, field: string, p: Problems): string | undefined {
  if (typeof value !== 'string' || !headerName.test(value))
    return p.add(field, `must be an HTTP header name (got ${JSON.stringify(value)})`);
  return value;
}

/** `RequestHeaders` / `ResponseHeaders`: `{Add, Set, Remove}`. Absent or all empty: undefined. */
export function readHeaderModifiers(
  obj: JsonObject,
  key: string,
  base: string,
  p: Problems,
): HeaderModifiers | undefined {
  const field = at(base, key);
  const m = readOptionalObject(obj, key, base, ['Add', 'Set', 'Remove'], p);
  if (!m) return undefined;
  const add = readHeaderMap(m.Add, at(field, 'Add'), p);
  const set = readHeaderMap(m.Set, at(field, 'Set'), p);
  const remove: string[] = [];
  if (m.Remove !== undefined && m.Remove !== null) {
    if (!Array.isArray(m.Remove))
      p.add(at(field, 'Remove'), 'must be a JSON array of header names');
    else
      m.Remove.forEach((h: unknown, i) => {
        const name = checkHeaderName(h, at(at(field, 'Remove'), i), p);
        if (name) remove.push(name);
      });
  }
  if (Object.keys(add).length + Object.keys(set).length + remove.length === 0) return undefined;
  return { add, set, remove };
}

function readHeaderMap(value: unknown, field: string, p: Problems): Record<string, string> {
  const out: Record<string, string> = {};
  if (value === undefined || value === null) return out;
  if (typeof value !== 'object' || Array.isArray(value))
    return p.add(field, 'must be a JSON object {header: value}') ?? out;
  for (const [k, v] of Object.entries(value as JsonObject).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!checkHeaderName(k, at(field, k), p)) continue;
    if (typeof v !== 'string') p.add(at(field, k), 'must be a string');
    else out[k] = v;
  }
  return out;
}

/**
 * A regular expression Envoy can run: its `safe_regex` matchers use RE2, which has no
 * backreferences or lookaround (checked with re2js, a port of RE2's parser).
 */
export function checkRe2(value: string, field: string, p: Problems): string | undefined {
  try {
    RE2JS.compile(value);
    return value;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return p.add(field, `is not an RE2 regular expression (${why}); Envoy matches with RE2`);
  }
}
