/**
 * Envoy resources as canonical proto3 JSON (lowerCamelCase names; the form Envoy accepts in a
 * bootstrap or file-based config) with every `Any` expanded into `@type` plus its fields, as in
 * Envoy's config dump (which prints the same fields in snake_case).
 */
import { messageTypeRegistry } from '../gen/typeRegistry.js';
import './registry.js';
import { typeNameOf } from '../proto-any.js';

/** Proto JSON of an encoded message with Any values expanded recursively. */
export function expandedJson(typeName: string, bytes: Uint8Array): unknown {
  const fns = messageTypeRegistry.get(typeName);
  if (!fns) throw new Error(`unknown type ${typeName}`);
  return expandAny(fns.toJSON(fns.decode(bytes)));
}

function expandAny(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(expandAny);
  if (value === null || typeof value !== 'object') return value;
  const o = value as Record<string, unknown>;
  if (typeof o.typeUrl === 'string' && typeof o.value === 'string' && Object.keys(o).length === 2) {
    const typeUrl = o.typeUrl;
    const typeName = typeNameOf(typeUrl);
    if (messageTypeRegistry.has(typeName)) {
      const inner = expandedJson(typeName, Buffer.from(o.value as string, 'base64')) as Record<
        string,
        unknown
      >;
      return { '@type': typeUrl, ...inner };
    }
  }
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, expandAny(v)]));
}
