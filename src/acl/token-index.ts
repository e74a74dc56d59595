import { IsthmusError } from '../errors.js';
import type { Logger } from '../log.js';
import type { RecordCollection, Store, StoreEvent } from '../store/index.js';
import { hashSecret, secretMatches } from './token-secret.js';

/** What every stored token record has: the store holds the secret's SHA-256, never the secret. */
export interface HashedTokenRecord {
  readonly accessorId: string;
  /** SHA-256 of the secret, hex. */
  readonly secretHash: string;
  /** ISO 8601. */
  readonly createTime: string;
}

export interface TokenIndexOptions<R> {
  /** `proxy token`, `API token`: in log lines and the not-found error. */
  readonly what: string;
  readonly logger: Logger;
  /**
   * Called when the store watch replaces or removes a record (here or on another server);
   * `next` is undefined for a delete or an invalid record.
   */
  readonly onChange?: (old: R | undefined, next: R | undefined) => void;
}

/**
 * The tokens of one kind, indexed by accessor ID and by the secret's SHA-256, loaded from the store
 * and then kept current by its watch, so a token revoked on one server is refused by all. Proxy
 * tokens and API tokens are both kept in one.
 */
export class TokenIndex<R extends HashedTokenRecord> {
  private readonly byHash = new Map<string, R>();
  private readonly byAccessor = new Map<string, R>();
  private unwatch: (() => void) | undefined;

  constructor(
    private readonly store: Store,
    private readonly records: RecordCollection<R>,
    private readonly opts: TokenIndexOptions<R>,
  ) {}

  /** A record that fails its schema fails the load (StoredRecordError names key and field). */
  async load(): Promise<void> {
    this.unwatch = this.store.watch(this.records.prefix, (event) => this.apply(event));
    for (const kv of await this.records.list(this.store)) this.index(kv.value);
  }

  async add(record: R): Promise<void> {
    await this.records.save(this.store, record.accessorId, record);
    this.index(record);
  }

  /** Deletes the token and resolves with its record; not_found when there is none. */
  async remove(accessorId: string): Promise<R> {
    const record = this.byAccessor.get(accessorId);
    if (!record || !(await this.store.delete(this.records.key(accessorId)))) {
      throw new IsthmusError(
        'not_found',
        `no ${this.opts.what} with AccessorID ${accessorId}`,
        'AccessorID',
      );
    }
    this.unindex(record);
    return record;
  }

  /**
   * The record whose secret is `secret`. Lookup is by the secret's SHA-256 (timing can reveal
   * nothing useful about a hash's preimage), then confirmed in constant time.
   */
  bySecret(secret: string): R | undefined {
    const record = this.byHash.get(hashSecret(secret).toString('hex'));
    return record && secretMatches(secret, record.secretHash) ? record : undefined;
  }

  /** Every record, oldest first. */
  all(): R[] {
    return [...this.byAccessor.values()].sort(
      (a, b) =>
        a.createTime.localeCompare(b.createTime) || a.accessorId.localeCompare(b.accessorId),
    );
  }

  close(): void {
    this.unwatch?.();
    this.unwatch = undefined;
  }

  private apply(event: StoreEvent): void {
    const old = this.byAccessor.get(this.records.idOf(event.key));
    if (old) this.unindex(old);
    const next = event.kind === 'put' ? this.decode(event) : undefined;
    if (next) this.index(next);
    this.opts.onChange?.(old, next);
  }

  /** An invalid record admits nothing, and is logged. */
  private decode(event: Extract<StoreEvent, { kind: 'put' }>): R | undefined {
    try {
      return this.records.decodeEvent(event);
    } catch (err) {
      this.opts.logger.error({ err, key: event.key }, `invalid ${this.opts.what} record ignored`);
      return undefined;
    }
  }

  private index(record: R): void {
    this.byAccessor.set(record.accessorId, record);
    this.byHash.set(record.secretHash, record);
  }

  private unindex(record: R): void {
    this.byAccessor.delete(record.accessorId);
    if (this.byHash.get(record.secretHash) === record) this.byHash.delete(record.secretHash);
  }
}
