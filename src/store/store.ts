/**
 * The persistence seam of isthmus. Keys are `/`-separated strings (e.g. `peerings/by-name/b`),
 * values are JSON-compatible data. Implementations: embedded LMDB (default, `lmdb-store.ts`) and,
 * later, etcd. Callers depend only on this interface.
 */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [k: string]: JsonValue };

export interface KeyValue<V = JsonValue> {
  readonly key: string;
  readonly value: V;
  /** Monotonic store revision at which this key was last written. */
  readonly revision: number;
}

/** A change observed by a prefix watch: discriminated by `kind`. */
export type StoreEvent =
  | {
      readonly kind: 'put';
      readonly key: string;
      readonly value: JsonValue;
      readonly revision: number;
    }
  | { readonly kind: 'delete'; readonly key: string; readonly revision: number };

/**
 * A read-modify-write transaction. Reads see the committed state plus this transaction's own
 * writes; writes are applied atomically at commit, and transactions are serializable.
 */
export interface StoreTxn {
  get<V extends JsonValue = JsonValue>(key: string): Promise<V | undefined>;
  list<V extends JsonValue = JsonValue>(prefix: string): Promise<KeyValue<V>[]>;
  put(key: string, value: JsonValue): void;
  delete(key: string): void;
}

export interface Store {
  get<V extends JsonValue = JsonValue>(key: string): Promise<V | undefined>;
  /** Every key under `prefix`, sorted by key. */
  list<V extends JsonValue = JsonValue>(prefix: string): Promise<KeyValue<V>[]>;
  put(key: string, value: JsonValue): Promise<void>;
  /** Resolves true when the key existed. */
  delete(key: string): Promise<boolean>;
  /**
   * Runs `fn` as one serializable transaction and commits its writes atomically. `fn` may be
   * retried on conflict, so it must not have side effects beyond the transaction.
   */
  txn<T>(fn: (tx: StoreTxn) => Promise<T>): Promise<T>;
  /**
   * Calls `onEvent` for every committed change under `prefix`, in commit order, after the commit.
   * Returns the function that stops the watch.
   */
  watch(prefix: string, onEvent: (event: StoreEvent) => void): () => void;
  /** The current store revision (increases with every committed write). */
  revision(): Promise<number>;
  close(): Promise<void>;
}
