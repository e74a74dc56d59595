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
  /**
   * The commit fails (and the transaction runs again) if any key under `prefix` changed after
   * this transaction's reads began, without reading them: what a writer checks against an
   * in-memory view of that prefix, which several servers write (no-op on a single server).
   */
  unchanged(prefix: string): void;
}

/** How a transaction commits (see `Store.txn`). */
export interface TxnOptions {
  /**
   * Only as the cluster's leader: the commit is fenced on this server's leader key (etcd: the key
   * is compared held under this server's lease in the same Txn), so a server that lost its lease
   * cannot write even if it still believes it leads. A single-server store is always the leader.
   */
  readonly asLeader?: boolean;
}

/**
 * The election among the servers that share a store (docs/architecture.md "Store"): at most one
 * leader at a time for once-per-cluster work (peering dialers, CA rotation).
 */
export interface Leadership {
  /** True while this server holds the leader key under a lease it keeps alive. */
  isLeader(): boolean;
  /** What the current leader published when it won (its peering address); undefined: none. */
  leader(): string | undefined;
  /** Calls `fn` whenever this server's leadership or the leader's value changes. */
  subscribe(fn: () => void): () => void;
}

/** One server of the cluster as it announced itself (`Store.announce`). */
export interface Member {
  readonly name: string;
  readonly value: JsonValue;
}

/**
 * The servers sharing the store that are alive now (docs/architecture.md §1 "Membership"): each
 * announced itself under a lease it keeps alive, so a server that dies leaves within the lease TTL.
 */
export interface Membership {
  /** Every live server, sorted by name (this one included). */
  members(): readonly Member[];
  /** Calls `fn` whenever a server joins, leaves or announces a new value. */
  subscribe(fn: () => void): () => void;
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
  txn<T>(fn: (tx: StoreTxn) => Promise<T>, opts?: TxnOptions): Promise<T>;
  /**
   * Resolves once this server's watchers have had every change committed (by any server) before
   * the call: an in-memory view fed by a watch is then at least as new as a read made now.
   */
  caughtUp(): Promise<void>;
  /**
   * Joins the election of the servers on this store, publishing `value` (this server's peering
   * address) while it leads. Called once; the campaign ends with `close`.
   */
  campaign(value: string): Leadership;
  /**
   * Announces this server to the others on the store as `name` with `value` (its addresses), for
   * as long as it runs: etcd keeps it at `members/<name>` under a lease of its own, so it goes
   * when the server stops or dies; a single-server store knows only itself. Called once.
   */
  announce(name: string, value: JsonValue): Membership;
  /** Why writes fail now (etcd unreachable), or undefined when the store is healthy. */
  problem(): string | undefined;
  /**
   * Calls `onEvent` for every committed change under `prefix`, in commit order, after the commit.
   * Returns the function that stops the watch.
   */
  watch(prefix: string, onEvent: (event: StoreEvent) => void): () => void;
  /** The current store revision (increases with every committed write). */
  revision(): Promise<number>;
  close(): Promise<void>;
}
