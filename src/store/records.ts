import { z } from 'zod';
import { IsthmusError } from '../errors.js';
import type { JsonValue, KeyValue, Store, StoreEvent, StoreTxn } from './store.js';

/**
 * Typed, validated records over the raw JSON Store (issue 13 item 7). The Store stays a plain
 * key → JSON seam (LMDB now, etcd later); each record kind brings its schema, checked on every
 * read, and its version, written into the record as `v`.
 *
 * A record is stored as its fields plus `v` (`{ v: 1, ...record }`). Records written before
 * versions existed have no `v` and count as version 1. A record of an older version goes through
 * the kind's `upgrade` (the migration hook) before validation; one of a newer version is refused.
 */
export interface RecordKind<T extends object> {
  /** What the record is, for error messages: `peering`, `CA root`. */
  readonly what: string;
  /** The version this code writes (1 until the shape first changes). */
  readonly version: number;
  /** The current shape. Strict objects: an unknown field is an error, not silently dropped. */
  readonly schema: z.ZodType<T>;
  /**
   * Turns a record written at `version` (older than the current one) into the current shape; the
   * result is then validated with `schema`. May throw a ZodError (reported like a failed schema).
   */
  readonly upgrade?: ((record: unknown, version: number) => unknown) | undefined;
}

/** The key → record reads both a Store and a StoreTxn answer. */
export type StoreReader = Pick<StoreTxn, 'get' | 'list'>;

/** A stored record that does not match its schema (or is of a version this code cannot read). */
export class StoredRecordError extends IsthmusError {
  constructor(
    readonly key: string,
    message: string,
    field?: string,
  ) {
    super('failed_precondition', message, field);
  }
}

export interface TypedKeyValue<T> extends KeyValue<T> {
  /** The key without the collection's prefix (a peering name, a root ID, …). */
  readonly id: string;
}

/** What `list` does with an invalid record: throw (the default) or report it and skip it. */
export interface ListOptions {
  readonly onInvalid?: ((error: StoredRecordError) => void) | undefined;
}

/**
 * The records of one kind under one key prefix (`peering/peerings/` + name). Reads decode and
 * validate; writes add the version and check the value reads back, so a record this code could
 * not read is never written.
 */
export class RecordCollection<T extends object> {
  constructor(
    readonly kind: RecordKind<T>,
    readonly prefix: string,
  ) {}

  key(id: string): string {
    return this.prefix + id;
  }

  idOf(key: string): string {
    return key.slice(this.prefix.length);
  }

  async get(reader: StoreReader, id: string): Promise<T | undefined> {
    const key = this.key(id);
    const raw = await reader.get(key);
    return raw === undefined ? undefined : decodeRecord(this.kind, key, raw);
  }

  async list(reader: StoreReader, opts: ListOptions = {}): Promise<TypedKeyValue<T>[]> {
    const out: TypedKeyValue<T>[] = [];
    for (const kv of await reader.list(this.prefix)) {
      try {
        const value = decodeRecord(this.kind, kv.key, kv.value);
        out.push({ key: kv.key, id: this.idOf(kv.key), value, revision: kv.revision });
      } catch (err) {
        if (!(err instanceof StoredRecordError) || !opts.onInvalid) throw err;
        opts.onInvalid(err);
      }
    }
    return out;
  }

  /** Stages a write in `tx`; returns the value as it will read back. */
  put(tx: Pick<StoreTxn, 'put'>, id: string, value: T): T {
    const key = this.key(id);
    const { json, decoded } = encodeRecord(this.kind, key, value);
    tx.put(key, json);
    return decoded;
  }

  /** One write in its own transaction. */
  async save(store: Store, id: string, value: T): Promise<T> {
    return store.txn(async (tx) => this.put(tx, id, value));
  }

  delete(tx: Pick<StoreTxn, 'delete'>, id: string): void {
    tx.delete(this.key(id));
  }

  /** The record a watch event carries (`put`), validated like a read. */
  decodeEvent(event: Extract<StoreEvent, { kind: 'put' }>): T {
    return decodeRecord(this.kind, event.key, event.value);
  }
}

/** A record kind stored under one fixed key (`ca/cluster`). */
export class SingleRecord<T extends object> {
  constructor(
    readonly kind: RecordKind<T>,
    readonly key: string,
  ) {}

  async get(reader: StoreReader): Promise<T | undefined> {
    const raw = await reader.get(this.key);
    return raw === undefined ? undefined : decodeRecord(this.kind, this.key, raw);
  }

  put(tx: Pick<StoreTxn, 'put'>, value: T): T {
    const { json, decoded } = encodeRecord(this.kind, this.key, value);
    tx.put(this.key, json);
    return decoded;
  }

  delete(tx: Pick<StoreTxn, 'delete'>): void {
    tx.delete(this.key);
  }
}

/** Reads one stored record: version check, upgrade, validation. Throws StoredRecordError. */
export function decodeRecord<T extends object>(
  kind: RecordKind<T>,
  key: string,
  raw: JsonValue,
): T {
  const version = versionOf(kind, key, raw);
  let body: unknown = withoutVersion(raw);
  if (version < kind.version) {
    if (!kind.upgrade) {
      throw new StoredRecordError(
        key,
        `stored ${kind.what} ${JSON.stringify(key)} has version ${version}, which this isthmus has no upgrade for`,
      );
    }
    try {
      body = kind.upgrade(body, version);
    } catch (err) {
      if (isZodError(err)) throw invalid(kind, key, err);
      throw err;
    }
  }
  const result = kind.schema.safeParse(body);
  if (!result.success) throw invalid(kind, key, result.error);
  return result.data;
}

function encodeRecord<T extends object>(
  kind: RecordKind<T>,
  key: string,
  value: T,
): { json: JsonValue; decoded: T } {
  // Through JSON text: the store keeps JSON, and `undefined` fields are dropped as it would.
  const json: JsonValue = JSON.parse(JSON.stringify({ ...value, v: kind.version }));
  try {
    return { json, decoded: decodeRecord(kind, key, json) };
  } catch (err) {
    if (!(err instanceof StoredRecordError)) throw err;
    throw new IsthmusError('internal', `refusing to write an invalid record: ${err.message}`);
  }
}

function versionOf(kind: RecordKind<object>, key: string, raw: JsonValue): number {
  if (!isObject(raw) || !('v' in raw)) return 1;
  const v = raw.v;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new StoredRecordError(
      key,
      `stored ${kind.what} ${JSON.stringify(key)} is invalid: v: not a version number`,
      'v',
    );
  }
  if (v > kind.version) {
    throw new StoredRecordError(
      key,
      `stored ${kind.what} ${JSON.stringify(key)} has version ${v}, newer than this isthmus reads (${kind.version}): run a newer isthmus on this data directory`,
      'v',
    );
  }
  return v;
}

function withoutVersion(raw: JsonValue): JsonValue {
  if (!isObject(raw)) return raw;
  const { v: _version, ...rest } = raw;
  return rest;
}

function isObject(value: JsonValue): value is { readonly [k: string]: JsonValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isZodError(err: unknown): err is z.ZodError {
  return err instanceof z.ZodError;
}

/** Every failed check with its path: `stored peering "…" is invalid: State: …; Meta.a: …`. */
function invalid(kind: RecordKind<object>, key: string, error: z.ZodError): StoredRecordError {
  const problems = error.issues.map(
    (issue) => `${pathText(issue.path) || '(record)'}: ${issue.message}`,
  );
  return new StoredRecordError(
    key,
    `stored ${kind.what} ${JSON.stringify(key)} is invalid: ${problems.join('; ')}`,
    pathText(error.issues[0]?.path ?? []) || undefined,
  );
}

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}
