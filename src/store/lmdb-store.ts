import fs from 'node:fs';
import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { IsthmusError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { JsonValue, KeyValue, Leadership, Store, StoreEvent, StoreTxn } from './store.js';
import {
  type PendingWrites,
  SerialQueue,
  Watchers,
  checkKey,
  copyJson,
  overlay,
} from './store-parts.js';

/**
 * The embedded store: one LMDB environment in `dir`, owned by exactly one isthmus server.
 *
 * - `kv` holds `{ r, v }` records (revision of the last write, value) under string keys; LMDB keeps
 *   them in UTF-8 byte order, which is the order `list` returns.
 * - `meta` holds the store revision, bumped in the same LMDB write transaction as the data, so it
 *   survives restarts and never goes backwards.
 * - Every transaction (and plain put/delete) runs through one in-process queue, so
 *   read-modify-writes never interleave, and commits with `transactionSync` (durable: flushed
 *   before it returns).
 *
 * LMDB locks the environment across processes, but a second process writing the same dir would
 * break serializability; the commit detects that (the revision moved under us) and fails loudly
 * instead of losing an update. Run one isthmus server per data dir.
 */
export async function openLmdbStore(dir: string, opts: { logger?: Logger } = {}): Promise<Store> {
  prepareWritableDir(dir);
  restrictToOwner(dir, opts.logger);
  const realDir = fs.realpathSync(dir);
  if (openDirs.has(realDir)) {
    throw new IsthmusError(
      'failed_precondition',
      `store directory ${realDir} is already open in this process`,
    );
  }
  openDirs.add(realDir);
  let env: RootDatabase | undefined;
  try {
    // noSubdir: false, or LMDB treats a dir name containing '.' as a file name.
    env = open({ path: realDir, maxDbs: 4, noSubdir: false });
    const store = new LmdbStore(realDir, env, opts.logger ?? silentLogger());
    opts.logger?.info({ dir: realDir, revision: store.currentRevision() }, 'store opened');
    return store;
  } catch (err) {
    openDirs.delete(realDir);
    await env?.close();
    throw err;
  }
}

/**
 * Directories with an open store in this process (LMDB must not be opened twice by one process).
 */
const openDirs = new Set<string>();

const revisionKey = 'revision';

interface StoredRecord {
  readonly r: number;
  readonly v: JsonValue;
}

class LmdbStore implements Store {
  private readonly kv: Database<StoredRecord, string>;
  private readonly meta: Database<number, string>;
  private readonly queue = new SerialQueue();
  private readonly watchers: Watchers;
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly env: RootDatabase,
    private readonly logger: Logger,
  ) {
    this.watchers = new Watchers(logger);
    this.kv = env.openDB<StoredRecord, string>({ name: 'kv', encoding: 'json' });
    this.meta = env.openDB<number, string>({ name: 'meta', encoding: 'json' });
  }

  async get<V extends JsonValue = JsonValue>(key: string): Promise<V | undefined> {
    this.assertOpen();
    return this.kv.get(key)?.v as V | undefined;
  }

  async list<V extends JsonValue = JsonValue>(prefix: string): Promise<KeyValue<V>[]> {
    this.assertOpen();
    return this.committedList(prefix) as KeyValue<V>[];
  }

  put(key: string, value: JsonValue): Promise<void> {
    return this.txn(async (tx) => tx.put(key, value));
  }

  delete(key: string): Promise<boolean> {
    return this.txn(async (tx) => {
      const existed = (await tx.get(key)) !== undefined;
      tx.delete(key);
      return existed;
    });
  }

  async txn<T>(fn: (tx: StoreTxn) => Promise<T>): Promise<T> {
    this.assertOpen();
    return this.queue.run(async () => {
      const startRevision = this.currentRevision();
      const writes: PendingWrites = new Map();
      const result = await fn(this.txnView(writes, startRevision + 1));
      this.commit(writes, startRevision);
      return result;
    });
  }

  watch(prefix: string, onEvent: (event: StoreEvent) => void): () => void {
    return this.watchers.add(prefix, onEvent);
  }

  /** Watchers hear every commit before it resolves: there is nothing to wait for. */
  async caughtUp(): Promise<void> {}

  /** One server per data dir: it is always the leader. */
  campaign(value: string): Leadership {
    return { isLeader: () => true, leader: () => value, subscribe: () => () => undefined };
  }

  problem(): string | undefined {
    return undefined;
  }

  async revision(): Promise<number> {
    this.assertOpen();
    return this.currentRevision();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Transactions queued before close still run; anything submitted after it rejects.
    await this.queue.run(async () => undefined);
    this.watchers.clear();
    try {
      await this.env.close();
    } finally {
      openDirs.delete(this.dir);
    }
  }

  currentRevision(): number {
    return this.meta.get(revisionKey) ?? 0;
  }

  private assertOpen(): void {
    if (this.closed) throw new IsthmusError('unavailable', `store at ${this.dir} is closed`);
  }

  private committedList(prefix: string): KeyValue[] {
    const out: KeyValue[] = [];
    for (const { key, value } of this.kv.getRange(prefix === '' ? {} : { start: prefix })) {
      if (!key.startsWith(prefix)) break;
      out.push({ key, value: value.v, revision: value.r });
    }
    return out;
  }

  /**
   * Reads see committed state overlaid with `writes`; puts show the revision they will commit at.
   */
  private txnView(writes: PendingWrites, pendingRevision: number): StoreTxn {
    const store = this;
    return {
      async get<V extends JsonValue = JsonValue>(key: string): Promise<V | undefined> {
        return (writes.has(key) ? writes.get(key) : store.kv.get(key)?.v) as V | undefined;
      },
      async list<V extends JsonValue = JsonValue>(prefix: string): Promise<KeyValue<V>[]> {
        return overlay(
          store.committedList(prefix),
          writes,
          prefix,
          pendingRevision,
        ) as KeyValue<V>[];
      },
      // One server per data dir, transactions one at a time: nothing else changes a prefix.
      unchanged(): void {},
      put(key: string, value: JsonValue): void {
        writes.set(checkKey(key), copyJson(key, value));
      },
      delete(key: string): void {
        writes.set(checkKey(key), undefined);
      },
    };
  }

  /**
   * Applies `writes` and the revision bump in one durable LMDB transaction, then notifies watchers.
   */
  private commit(writes: PendingWrites, startRevision: number): void {
    if (writes.size === 0) return;
    const events = this.durably(() => {
      const revision = this.currentRevision();
      if (revision !== startRevision) {
        throw new IsthmusError(
          'failed_precondition',
          `store at ${this.dir} was written by another process (revision ${startRevision} → ${revision}); only one isthmus server may own a data dir`,
        );
      }
      const changes = this.applyWrites(writes, revision + 1);
      if (changes.length > 0) this.meta.putSync(revisionKey, revision + 1);
      return changes;
    });
    this.watchers.notify(events);
  }

  /**
   * Runs `fn` in one durable LMDB write transaction. A transaction the disk refuses is aborted
   * whole: LMDB writes its pages copy-on-write and the meta page last, so the committed state and
   * the revision stay as they were, and nothing is notified (in-memory indexes apply only what was
   * committed). A full disk becomes `storage_full` (HTTP 507) naming ENOSPC and the directory.
   */
  private durably<T>(fn: () => T): T {
    try {
      return this.kv.transactionSync(fn);
    } catch (err) {
      const reason = diskFullReason(err);
      if (reason === undefined) throw err;
      this.logger.warn({ dir: this.dir, reason }, 'store write refused: the disk is full');
      throw new IsthmusError(
        'storage_full',
        `store at ${this.dir} cannot write: ${reason}; reads keep serving, free space in the data directory and retry`,
      );
    }
  }

  /** Must run inside the write transaction. Deletes of absent keys are not changes. */
  private applyWrites(writes: PendingWrites, revision: number): StoreEvent[] {
    const events: StoreEvent[] = [];
    for (const [key, value] of writes) {
      if (value !== undefined) {
        this.kv.putSync(key, { r: revision, v: value });
        events.push({ kind: 'put', key, value, revision });
      } else if (this.kv.removeSync(key)) {
        events.push({ kind: 'delete', key, revision });
      }
    }
    return events;
  }
}

/** errno values of a full disk: ENOSPC and EDQUOT on Linux (LMDB reports the bare number). */
const diskFullErrnos: ReadonlyMap<number, string> = new Map([
  [28, 'ENOSPC (no space left on device)'],
  [122, 'EDQUOT (disk quota exceeded)'],
]);

/** Why a write failed if the disk is full (`undefined` for any other error). */
function diskFullReason(err: unknown): string | undefined {
  const { code, errno } = err as { code?: unknown; errno?: unknown };
  for (const value of [code, errno]) {
    if (typeof value === 'number' && diskFullErrnos.has(value)) return diskFullErrnos.get(value);
  }
  if (code === 'ENOSPC' || /no space left on device/i.test(String((err as Error)?.message)))
    return diskFullErrnos.get(28);
  if (code === 'EDQUOT') return diskFullErrnos.get(122);
  return undefined;
}

/**
 * Creates the data directory if needed and proves a file can be written in it, so a directory that
 * cannot be written fails the start with one line naming the path and the reason (LMDB's own
 * errors name neither), never later on the first write.
 */
function prepareWritableDir(dir: string): void {
  const probe = path.join(dir, '.isthmus-write-check');
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (err) {
    throw new IsthmusError(
      'failed_precondition',
      `data directory ${dir} is not writable: ${whyNotWritable(dir, err)}; choose another --data-dir or make it writable`,
      '--data-dir',
    );
  }
}

/**
 * The reason, told at the nearest path that exists: recursive mkdir reports ENOENT under a
 * read-only mount, where access(2) tells EROFS.
 */
function whyNotWritable(dir: string, err: unknown): string {
  let existing = path.resolve(dir);
  while (!fs.existsSync(existing) && path.dirname(existing) !== existing)
    existing = path.dirname(existing);
  if (!fs.statSync(existing).isDirectory()) return `${existing} is not a directory (ENOTDIR)`;
  try {
    fs.accessSync(existing, fs.constants.W_OK);
  } catch (accessErr) {
    return `${describeErrno(accessErr)} at ${existing}`;
  }
  return describeErrno(err);
}

const errnoText: Readonly<Record<string, string>> = {
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'not a directory',
};

function describeErrno(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const text = code === undefined ? undefined : errnoText[code];
  return text ? `${text} (${code})` : String((err as Error).message ?? err);
}

/**
 * The store holds peering stream secrets and the CA key sits beside it: an existing data directory
 * (mkdir's mode applies only to one it creates) is narrowed to its owner too. A directory we do not
 * own (a mounted volume, say) is left alone with a warning.
 */
function restrictToOwner(dir: string, logger: Logger | undefined): void {
  const mode = fs.statSync(dir).mode & 0o777;
  if ((mode & 0o077) === 0) return;
  try {
    fs.chmodSync(dir, mode & 0o700);
    logger?.info(
      { dir, was: `0${mode.toString(8)}` },
      'data directory narrowed to owner-only access (0700)',
    );
  } catch (err) {
    logger?.warn(
      { dir, mode: `0${mode.toString(8)}`, error: (err as Error).message },
      'data directory is readable by others and cannot be changed: restrict it (chmod 700)',
    );
  }
}
