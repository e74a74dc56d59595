import { messageTypeRegistry, type UnknownMessage } from './gen/typeRegistry.js';
import type { Any } from './gen/google/protobuf/any.js';

/** The prefix of every type URL isthmus writes. */
export const typePrefix = 'type.googleapis.com/';

/** Packs a ts-proto message (its `$type` names the proto) into a `google.protobuf.Any`. */
export function packAny(message: UnknownMessage & { $type?: string }): Any {
  const typeName = message.$type;
  if (!typeName) throw new Error('packAny: message has no $type');
  const fns = messageTypeRegistry.get(typeName);
  if (!fns) throw new Error(`packAny: ${typeName} is not in the type registry`);
  return {
    $type: 'google.protobuf.Any',
    typeUrl: typePrefix + typeName,
    value: Buffer.from(fns.encode(message).finish()),
  };
}

/** Decodes an Any whose type is in the registry; undefined for unknown types. */
export function unpackAny(any: Any): (UnknownMessage & { $type?: string }) | undefined {
  const fns = messageTypeRegistry.get(typeNameOf(any.typeUrl));
  return fns?.decode(any.value);
}

export function typeUrlOf(typeName: string): string {
  return typePrefix + typeName;
}

/** The message type a type URL names: what follows its last "/". */
export function typeNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}
