/**
 * What every Store implementation shares (docs/architecture.md §1 "State"): the serial queue of a
 * server's transactions, a transaction's buffered writes over committed reads, the key order, the
 * checks on keys and values, and the prefix watchers.
 */
import { IsthmusError } from '../errors.js';
import type { Logger } from '../log.js';
import type { JsonValue, KeyValue, StoreEvent } from './store.js';

/** A transaction's buffered writes: the value to put, or `undefined` for a delete. */
export type PendingWrites = Map<string, JsonValue | undefined>;

/** Runs async tasks one at a time, in submission order; a failed task does not stop the queue. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** Committed entries under `prefix` with a transaction's own writes over them, in key order. */
export function overlay(
  committed: readonly KeyValue[],
  writes: PendingWrites,
  prefix: string,
  revision: number,
): KeyValue[] {
  const byKey = new Map(committed.map((kv) => [kv.key, kv]));
  for (const [key, value] of writes) {
    if (!key.startsWith(prefix)) continue;
    if (value === undefined) byKey.delete(key);
    else byKey.set(key, { key, value, revision });
  }
  return [...byKey.values()].sort((a, b) => compareUtf8(a.key, b.key));
}

/**
 * The stores' order for string keys: UTF-8 bytes, as LMDB and etcd keep them (it differs from `<`
 * on UTF-16 for astral characters).
 */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function checkKey(key: string): string {
  if (typeof key !== 'string' || key === '') {
    throw new IsthmusError('invalid_argument', 'store key must be a non-empty string');
  }
  return key;
}

/**
 * Snapshots the value as it will be stored, so later caller mutations cannot leak into the commit.
 */
export function copyJson(key: string, value: JsonValue): JsonValue {
  const text = JSON.stringify(value);
  if (text === undefined)
    throw new IsthmusError('invalid_argument', `value for ${key} is not JSON`, key);
  return JSON.parse(text) as JsonValue;
}

interface Watcher {
  readonly prefix: string;
  readonly onEvent: (event: StoreEvent) => void;
}

/** Prefix watchers; one that throws is logged and the others still hear every event. */
export class Watchers {
  private readonly all = new Set<Watcher>();

  constructor(private readonly logger: Logger) {}

  add(prefix: string, onEvent: (event: StoreEvent) => void): () => void {
    const watcher: Watcher = { prefix, onEvent };
    this.all.add(watcher);
    return () => this.all.delete(watcher);
  }

  clear(): void {
    this.all.clear();
  }

  notify(events: readonly StoreEvent[]): void {
    for (const event of events) {
      for (const watcher of [...this.all]) {
        if (!this.all.has(watcher) || !event.key.startsWith(watcher.prefix)) continue;
        try {
          watcher.onEvent(event);
        } catch (err) {
          this.logger.error({ err, key: event.key, prefix: watcher.prefix }, 'store watcher threw');
        }
      }
    }
  }
}
