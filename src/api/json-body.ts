import type { FastifyInstance } from 'fastify';
import { IsthmusError } from '../errors.js';
import { clip } from '../problems.js';

/**
 * Bounds on an HTTP request body's JSON (issue 21 §3, docs/architecture.md §2 "Limits of the HTTP
 * API"). No registration, config entry or CA configuration nests deeper than about 8 levels; the
 * longest legitimate string is a PEM chain of a few KiB.
 */
export const jsonLimits = {
  maxDepth: 64,
  maxStringChars: 64 * 1024,
} as const;

/**
 * Parses every request body of `scope` as JSON whatever its Content-Type: Consul's docs and users
 * send registrations with `curl --data @file` (form-encoded) or with no Content-Type at all. An
 * empty body is `undefined`, for the route to reject in its own words.
 */
export function acceptJsonBodies(scope: FastifyInstance): void {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    try {
      done(null, parseJsonBody(text));
    } catch (err) {
      done(IsthmusError.from(err), undefined);
    }
  });
}

/**
 * `text` as JSON, or an invalid_argument IsthmusError: not JSON, nested deeper than
 * `jsonLimits.maxDepth` (checked before parsing, without recursion), or a string longer than
 * `jsonLimits.maxStringChars` (naming the field).
 */
export function parseJsonBody(text: string): unknown {
  const depth = jsonDepthExceeds(text, jsonLimits.maxDepth);
  if (depth)
    throw new IsthmusError(
      'invalid_argument',
      `request body nests objects and arrays more than ${jsonLimits.maxDepth} deep; flatten it`,
    );
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new IsthmusError(
      'invalid_argument',
      `request body is not valid JSON: ${clip((err as Error).message)}`,
    );
  }
  const long = longString(value, jsonLimits.maxStringChars);
  if (long)
    throw new IsthmusError(
      'invalid_argument',
      `${long.field || 'request body'}: ${long.length} characters, more than the ${jsonLimits.maxStringChars} a field may have`,
      long.field || undefined,
    );
  return value;
}

/** Whether `[` / `{` nest more than `max` deep in `text`, outside strings: one linear scan. */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * The first string (value or key) longer than `max` characters, with its JSON path, walking with
 * an explicit stack (the depth is already bounded, but no recursion is needed).
 */
function longString(root: unknown, max: number): { field: string; length: number } | undefined {
  const stack: [unknown, string][] = [[root, '']];
  for (let next = stack.pop(); next; next = stack.pop()) {
    const [value, path] = next;
    if (typeof value === 'string') {
      if (value.length > max) return { field: clip(path, 200), length: value.length };
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => {
        stack.push([v, `${path}[${i}]`]);
      });
    } else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        const field = path === '' ? k : `${path}.${k}`;
        if (k.length > max) return { field: clip(field, 200), length: k.length };
        stack.push([v, field]);
      }
    }
  }
  return undefined;
}
